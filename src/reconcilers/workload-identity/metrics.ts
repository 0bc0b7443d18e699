import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ComputedGauge, type GaugeSample } from '../../controller-runtime/computed-gauge.ts';
import type { WorkloadIdentity } from './types.ts';

type IdentityLabels = 'namespace' | 'name';

/**
 * The per-identity samples of one WorkloadIdentity as its status says: Ready (1 or 0), and the current
 * SVID's notAfter and renewal time in seconds since the epoch (absent until it has one). An identity being
 * deleted has none.
 */
export function identitySamples(wi: WorkloadIdentity): {
  ready?: number;
  expiry?: number;
  renewal?: number;
} {
  if (wi.metadata.deletionTimestamp) return {};
  const status = wi.status;
  const ready = status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? 1 : 0;
  const seconds = (t: string | undefined) => (t === undefined ? undefined : Date.parse(t) / 1000);
  return { ready, expiry: seconds(status?.notAfter), renewal: seconds(status?.renewalTime) };
}

/** What the work queue and the pacer hold now (read on each scrape). */
export interface QueueView {
  depth: number;
  scheduled: number;
  active: number;
  writing: number;
  pacerBacklog: number;
  /** Renewals the pacer holds inside their look-ahead window, not yet due (Pacer.ahead). */
  pacerAhead: number;
}

/** The operator's Prometheus metrics. Label values are identity names, never secrets. */
export class ControllerMetrics {
  readonly registry: Registry;
  readonly issuances: Counter<'result' | 'cause'>;
  readonly issuanceSeconds: Histogram<'result'>;
  readonly reconcileErrors: Counter;
  readonly apiWrites: Counter<'kind'>;
  readonly eventsDropped: Counter;
  readonly certificateExpiry: ComputedGauge<IdentityLabels>;
  readonly renewalTime: ComputedGauge<IdentityLabels>;
  readonly ready: ComputedGauge<IdentityLabels>;
  /** The identities the per-identity gauges report (the controller's cache, see identitiesFrom). */
  private identities: () => Iterable<WorkloadIdentity> = () => [];
  readonly queueDepth: Gauge;
  readonly queueLatency: Histogram<'priority'>;
  readonly reconcileSeconds: Histogram<'result'>;
  readonly apiRequestSeconds: Histogram<'verb' | 'resource' | 'code'>;
  readonly scheduled: Gauge;
  readonly active: Gauge;
  readonly writing: Gauge;
  readonly pacerBacklog: Gauge;
  readonly pacerAhead: Gauge;
  /** The queue the queue gauges read on each scrape (see queueFrom). */
  private queue: () => QueueView | undefined = () => undefined;
  readonly caExpiry: Gauge;
  readonly leader: Gauge;
  readonly secretsHoldingSvidData: Gauge;
  /** How many cached managed Secrets still hold tls.crt or tls.key (see secretsHoldingSvidDataFrom). */
  private heldSvidData: () => number | undefined = () => undefined;

  constructor(registry = new Registry()) {
    this.registry = registry;
    const r = [registry];
    this.issuances = new Counter({
      name: 'svid_operator_issuances_total',
      help: 'SVID issuances by result (success, failure) and cause (Missing, Expiring, SpecChanged, ...)',
      labelNames: ['result', 'cause'],
      registers: r,
    });
    this.issuanceSeconds = new Histogram({
      name: 'svid_operator_issuance_duration_seconds',
      help: 'Time to issue an SVID and write its Secret',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    });
    this.reconcileErrors = new Counter({
      name: 'svid_operator_reconcile_errors_total',
      help: 'Reconciles that failed and were retried with backoff',
      registers: r,
    });
    this.apiWrites = new Counter({
      name: 'svid_operator_api_writes_total',
      help: 'Writes to the API server by kind (secret, status, event)',
      labelNames: ['kind'],
      registers: r,
    });
    this.eventsDropped = new Counter({
      name: 'svid_operator_events_dropped_total',
      help: 'Kubernetes Events not sent because the backlog was full (a burst of issuances)',
      registers: r,
    });
    // Computed from the identities on each scrape, not held per identity (see computed-gauge.ts).
    this.certificateExpiry = new ComputedGauge({
      name: 'svid_operator_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the current SVID of each WorkloadIdentity',
      registers: r,
      collect: () => this.samples((v) => v.expiry),
    });
    this.renewalTime = new ComputedGauge({
      name: 'svid_operator_certificate_renewal_timestamp_seconds',
      help: 'When each SVID is due for renewal',
      registers: r,
      collect: () => this.samples((v) => v.renewal),
    });
    this.ready = new ComputedGauge({
      name: 'svid_operator_identity_ready',
      help: '1 when the WorkloadIdentity is Ready, else 0',
      registers: r,
      collect: () => this.samples((v) => v.ready),
    });
    // The queue's gauges are read from it on each scrape (queueFrom), not set on every change.
    const queue = () => this.queue();
    const fromQueue = (pick: (q: QueueView) => number) =>
      function (this: Gauge) {
        const q = queue();
        if (q) this.set(pick(q));
      };
    this.queueDepth = new Gauge({
      name: 'svid_operator_workqueue_depth',
      help: 'Keys waiting in the work queue',
      registers: r,
      collect: fromQueue((q) => q.depth),
    });
    this.queueLatency = new Histogram({
      name: 'svid_operator_workqueue_latency_seconds',
      help: 'Time a key waited in the queue before it was reconciled, by the lane it waited in (urgent, due, normal, resync)',
      labelNames: ['priority'],
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers: r,
    });
    this.reconcileSeconds = new Histogram({
      name: 'svid_operator_reconcile_duration_seconds',
      help: 'Time one reconcile of an identity held its slot (reads and decision, signing; its Secret and status writes run after, in a write slot), by result (success, error)',
      labelNames: ['result'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    });
    this.apiRequestSeconds = new Histogram({
      name: 'svid_operator_api_request_duration_seconds',
      help: "Round trip of the reconciler's API requests by verb, resource (secret, status) and HTTP code class",
      labelNames: ['verb', 'resource', 'code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    });
    this.scheduled = new Gauge({
      name: 'svid_operator_workqueue_scheduled',
      help: 'Keys scheduled to run later (renewal times, retries), not yet in the queue',
      registers: r,
      collect: fromQueue((q) => q.scheduled),
    });
    this.active = new Gauge({
      name: 'svid_operator_workqueue_active',
      help: 'Reconcile slots in use (at most --concurrency): deciding, or waiting for a write slot',
      registers: r,
      collect: fromQueue((q) => q.active),
    });
    this.writing = new Gauge({
      name: 'svid_operator_workqueue_writing',
      help: 'Identities whose Secret and status writes are in flight (at most --writes-in-flight)',
      registers: r,
      collect: fromQueue((q) => q.writing),
    });
    this.pacerBacklog = new Gauge({
      name: 'svid_operator_issuance_pacer_backlog',
      help: 'Re-issuances waiting for an --issuance-rate token',
      registers: r,
      collect: fromQueue((q) => q.pacerBacklog),
    });
    this.pacerAhead = new Gauge({
      name: 'svid_operator_issuance_pacer_ahead',
      help: 'Renewals inside their look-ahead window that the pacer holds until they are due or taken early',
      registers: r,
      collect: fromQueue((q) => q.pacerAhead),
    });
    const heldSvidData = () => this.heldSvidData();
    this.secretsHoldingSvidData = new Gauge({
      name: 'svid_operator_cached_secrets_with_svid_data',
      help: 'Managed Secrets whose cached copy still holds tls.crt or tls.key (dropped once their facts are known; memory, issue 17)',
      registers: r,
      collect(this: Gauge) {
        const n = heldSvidData();
        if (n !== undefined) this.set(n);
      },
    });
    this.caExpiry = new Gauge({
      name: 'svid_operator_ca_expiry_timestamp_seconds',
      help: 'notAfter of the signing CA',
      registers: r,
    });
    this.leader = new Gauge({
      name: 'svid_operator_leader',
      help: '1 while this replica leads',
      registers: r,
    });
  }

  private *samples(
    pick: (v: ReturnType<typeof identitySamples>) => number | undefined,
  ): Iterable<GaugeSample<IdentityLabels>> {
    for (const wi of this.identities()) {
      const value = pick(identitySamples(wi));
      if (value !== undefined)
        yield { labels: { namespace: wi.metadata.namespace, name: wi.metadata.name }, value };
    }
  }

  /**
   * Where the per-identity gauges read the identities from on each scrape: the controller's newest view
   * (its cache, or its own status write the watch has not delivered yet). Replaces any earlier source.
   */
  identitiesFrom(source: () => Iterable<WorkloadIdentity>): void {
    this.identities = source;
  }

  /** Where svid_operator_cached_secrets_with_svid_data is counted on each scrape (the Secret cache). */
  secretsHoldingSvidDataFrom(source: () => number): void {
    this.heldSvidData = source;
  }

  /** Where the queue gauges read the work queue and pacer from on each scrape. */
  queueFrom(source: () => QueueView): void {
    this.queue = source;
  }
}
