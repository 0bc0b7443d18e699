// Wires the watches to the work queue and the reconciler: WorkloadIdentities (the input), the Secrets the
// operator manages (selected by label, so no other Secret is ever cached) and the CA Secret (by name).
import type * as k8s from '@kubernetes/client-node';
import { paths, type KubeClient } from '../../kube/client.ts';
import { loadCa, PkiError } from '../../pki/index.ts';
import { CaRotation } from './ca-rotation.ts';
import { EventRecorder } from './events.ts';
import {
  errorText,
  Informer,
  keyOf,
  type InformerLogger,
  type InformerOptions,
  type Source,
} from '../../controller-runtime/informer.ts';
import { RateLimiter } from '../../controller-runtime/limiter.ts';
import { Pacer } from '../../controller-runtime/pacer.ts';
import { withoutManagedFields } from '../../controller-runtime/managed-fields.ts';
import { BundleInterner, slimIdentity } from './slim.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { CaState, IdentityPolicy } from './plan.ts';
import { Reconciler, type ReconcileLogger } from './reconciler.ts';
import { SecretClaims } from './secret-claims.ts';
import { WorkQueue, type Priority } from '../../controller-runtime/queue.ts';
import {
  GROUP,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OWNER_LABEL,
  PLURAL,
  VERSION,
  type WorkloadIdentity,
} from './types.ts';

export interface ControllerOptions {
  kc: KubeClient;
  policy: IdentityPolicy;
  caSecret: { namespace: string; name: string };
  /** PEM roots added to every trust bundle (admin-configured, e.g. a CA that is about to take over). */
  extraRootsPem?: string;
  /**
   * How long a written Secret takes to reach every pod (kubelet's sync, 60-90 s): a CA rotation waits this
   * long after the last bundle got the new roots before signing with the new CA, and after the last old
   * SVID before dropping the old roots (see ca-rotation.ts).
   */
  caPropagationDelayMs: number;
  /**
   * The longest lifetime of certificates the CA signs that no managed Secret tracks (pod certificates; 0 when
   * the signer is off): a retiring root stays until the last of those it may have signed has expired.
   */
  untrackedLifetimeMs?: number;
  /** Empty: all namespaces. */
  watchNamespaces: string[];
  concurrency: number;
  /** Identities whose Secret and status writes are in flight at once, outside the reconcile slots. */
  writesInFlight: number;
  /**
   * Re-issuances per second at most for identities that still hold a valid SVID (a CA change, renewals),
   * so a CA change does not flood the API server. First issuances and broken SVIDs are not paced by it.
   */
  issuanceRate: number;
  apiQps: number;
  /** How often every identity is re-checked besides its own schedule; 0: never. */
  resyncMs: number;
  instance: string;
  metrics: ControllerMetrics;
  log: ReconcileLogger & InformerLogger;
  /** Watch tuning (tests shorten the watches' server-side lifetime). */
  informer?: InformerOptions;
}

// Events are best-effort and share nothing with the Secret and status writes' budget (see events.ts).
const EVENTS_PER_SECOND = 10;
const EVENT_BACKLOG = 100;

/** A read view over several informers of the same kind (one per watched namespace). */
class Caches<T extends { metadata?: { namespace?: string; name?: string } }> {
  readonly informers: Informer<T>[];
  constructor(informers: Informer<T>[]) {
    this.informers = informers;
  }
  get(key: string): T | undefined {
    for (const i of this.informers) {
      const v = i.get(key);
      if (v) return v;
    }
    return undefined;
  }
  keys(): string[] {
    return this.informers.flatMap((i) => [...i.cache.keys()]);
  }
}

export class Controller {
  private readonly o: ControllerOptions;
  private readonly identities: Caches<WorkloadIdentity>;
  private readonly secrets: Caches<k8s.V1Secret>;
  private readonly caInformer: Informer<k8s.V1Secret>;
  private readonly queue: WorkQueue;
  private readonly events: EventRecorder;
  private readonly reconciler: Reconciler;
  private caState: CaState = { ok: false, message: 'the CA Secret has not been read yet' };
  private caVersion = '';
  /** The CA load in progress (or the last one): loads run one after another, never side by side. */
  private caLoad: Promise<void> = Promise.resolve();
  private readonly rotation: CaRotation;
  private readonly pacer: Pacer<string>;
  /** Every cache listed once (the rotation only advances on complete caches). */
  private synced = false;
  private caRetry?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private readonly claims = new SecretClaims();
  private readonly caListeners: (() => void)[] = [];

  constructor(o: ControllerOptions) {
    this.o = o;
    const namespaces = o.watchNamespaces.length > 0 ? o.watchNamespaces : [''];
    const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

    const bundles = new BundleInterner();
    this.identities = new Caches(
      namespaces.map(
        (ns) =>
          new Informer<WorkloadIdentity>(
            o.kc,
            `workloadidentities${ns ? `/${ns}` : ''}`,
            identitySource(o.kc, ns, bundles.identity),
            o.log,
            o.informer,
          ),
      ),
    );
    this.secrets = new Caches(
      namespaces.map(
        (ns) =>
          new Informer<k8s.V1Secret>(
            o.kc,
            `secrets${ns ? `/${ns}` : ''}`,
            secretSource(o.kc, ns, { labelSelector }, bundles.secret),
            o.log,
            o.informer,
          ),
      ),
    );
    // A Secret shares its owner's strings, and a new version of an identity the previous version's (slim.ts).
    // The cached version, not this process's newest write: a written status is the write's answer, with
    // strings of its own, and sharing those left the Secret and the identity each with a copy again (a
    // 5,000-identity heap snapshot: 2.9 uid strings per identity against 2.0).
    const identities = this.identities;
    bundles.ownerOf = (namespace, name) => identities.get(`${namespace}/${name}`);
    this.caInformer = new Informer<k8s.V1Secret>(
      o.kc,
      'ca-secret',
      secretSource(o.kc, o.caSecret.namespace, { fieldSelector: `metadata.name=${o.caSecret.name}` }),
      o.log,
      o.informer,
    );

    // A granted re-issuance is due work: it goes ahead of watch changes and resyncs, so its turn is not
    // spent waiting behind them (and the token is not wasted).
    this.pacer = new Pacer<string>(o.issuanceRate, (key) => this.enqueue(key, 'due'));
    this.rotation = new CaRotation({
      kc: o.kc,
      caSecret: o.caSecret,
      extraRootsPem: o.extraRootsPem,
      trustDomain: o.policy.trustDomain,
      propagationDelayMs: o.caPropagationDelayMs,
      untrackedLifetimeMs: o.untrackedLifetimeMs ?? 0,
      secrets: this.secrets,
      identities: this.identities,
      synced: () => this.synced,
      log: o.log,
    });
    // The signing CA or the bundle moved (a rotation phase): every identity re-checks its Secret.
    this.rotation.onChange = () => {
      const ca = this.rotation.current();
      if (!ca || !this.caState.ok) return;
      this.setCaState({ ok: true, ca });
    };
    const apiLimiter = new RateLimiter(o.apiQps, Math.ceil(o.apiQps * 1.5));
    this.events = new EventRecorder(o.kc, o.instance, {
      ratePerSecond: EVENTS_PER_SECOND,
      backlog: EVENT_BACKLOG,
      onSent: () => o.metrics.apiWrites.inc({ kind: 'event' }),
      onDropped: () => o.metrics.eventsDropped.inc(),
      onError: (err) => o.log.warn('recording an event failed', { error: errorText(err) }),
    });
    this.reconciler = new Reconciler({
      kc: o.kc,
      policy: o.policy,
      identities: this.identities,
      secrets: this.secrets,
      ca: () => this.caState,
      caSecret: o.caSecret,
      claims: this.claims,
      events: this.events,
      pacer: this.pacer,
      apiLimiter,
      metrics: o.metrics,
      log: o.log,
      // Held watch events that were not the echo of the write in flight: changes, as if seen now.
      changed: {
        secret: (secret) => this.secretChanged(secret),
        identity: (wi) => this.identityChanged(wi),
      },
    });
    this.queue = new WorkQueue(
      {
        concurrency: o.concurrency,
        writeConcurrency: o.writesInFlight,
        baseDelayMs: 1000,
        maxDelayMs: 5 * 60_000,
        onStart: (_key, waitedMs, priority) => o.metrics.queueLatency.observe({ priority }, waitedMs / 1000),
      },
      async (key) => {
        const started = performance.now();
        let result = 'success';
        try {
          return await this.reconciler.reconcile(key);
        } catch (err) {
          result = 'error';
          throw err;
        } finally {
          o.metrics.reconcileSeconds.observe({ result }, (performance.now() - started) / 1000);
        }
      },
      (key, err, retryInMs) => {
        o.metrics.reconcileErrors.inc();
        o.log.warn('reconcile failed, retrying', { identity: key, retryInMs, error: errorText(err) });
      },
    );

    for (const informer of this.identities.informers) {
      informer.on((event, wi) => {
        if (event === 'delete') {
          this.reconciler.identityDeleted(wi);
          // Identities that shared its secretName decide again who gets the Secret.
          for (const other of this.claims.remove(wi.metadata.namespace, wi.metadata.name))
            this.enqueue(other);
          return;
        }
        const seen = this.reconciler.identitySeen(wi);
        for (const other of this.claims.update(wi)) this.enqueue(other);
        // The echo of the operator's own status write: the reconcile that wrote it has already scheduled
        // what comes next, so a renewal costs one reconcile, not three. An event that arrives while a status
        // write of the identity is in flight is held until the write answers, and comes back through
        // identityChanged unless it is that write's echo.
        if (seen === 'change') this.identityChanged(wi);
      });
    }
    for (const informer of this.secrets.informers) {
      informer.on((event, secret) => {
        if (event === 'delete') this.reconciler.secretDeleted(secret);
        // The echo of the operator's own Secret write, or held while one is in flight (see above).
        else if (this.reconciler.secretSeen(secret) !== 'change') return;
        this.secretChanged(secret);
      });
    }
    // The per-identity gauges, computed on each scrape from the newest view of every identity.
    o.metrics.identitiesFrom(() => this.currentIdentities());
    o.metrics.secretsHoldingSvidDataFrom(() => {
      let n = 0;
      for (const informer of this.secrets.informers)
        for (const secret of informer.cache.values())
          if (secret.data?.['tls.crt'] !== undefined || secret.data?.['tls.key'] !== undefined) n++;
      return n;
    });
    o.metrics.queueFrom(() => ({
      depth: this.queue.depth,
      scheduled: this.queue.scheduled,
      active: this.queue.active,
      writing: this.queue.writing,
      pacerBacklog: this.pacer.backlog,
      pacerAhead: this.pacer.aheadCount,
    }));
    // A rejection is logged by the informer (reloadCa reports every CA problem on status itself).
    this.caInformer.on(() => this.reloadCa());
  }

  /** A watch saw an identity change (not the echo of the operator's own write). */
  private identityChanged(wi: WorkloadIdentity): void {
    // An identity without an SVID yet goes ahead of re-checks (a CA change queues every identity), so a pod
    // waiting for its first Secret never waits behind a backlog.
    this.enqueue(keyOf(wi), wi.status?.serialNumber ? 'normal' : 'urgent');
  }

  /** A watch saw a managed Secret change or go (not the echo of the operator's own write): its owner looks. */
  private secretChanged(secret: k8s.V1Secret): void {
    const owner = secret.metadata?.labels?.[OWNER_LABEL];
    if (owner) this.enqueue(`${secret.metadata?.namespace}/${owner}`);
  }

  private enqueue(key: string, priority: Priority = 'normal'): void {
    this.queue.add(key, priority);
  }

  private setCaState(next: CaState): void {
    const changed = caStateChanged(this.caState, next);
    this.caState = next;
    // Every identity re-checks its SVID against the new CA; re-issuance is paced in the reconciler.
    if (changed) for (const key of this.identities.keys()) this.enqueue(key);
    if (changed) for (const listener of this.caListeners) listener();
  }

  private *currentIdentities(): Iterable<WorkloadIdentity> {
    for (const key of this.identities.keys()) {
      const wi = this.reconciler.identity(key);
      if (wi) yield wi;
    }
  }

  /**
   * Reads the CA Secret from the cache, validates it, and hands it to the rotation, after any load already
   * under way. The CA informer's first event starts a load, and start() awaits this too: it must wait for
   * that load to finish, not return because the version was already taken, or the first reconciles would
   * report CAUnavailable ("not read yet") and write a status that the finished load writes back at once.
   */
  private reloadCa(force = false): Promise<void> {
    const run = this.caLoad.then(() => this.reloadCaNow(force));
    this.caLoad = run.catch(() => undefined);
    return run;
  }

  private async reloadCaNow(force: boolean): Promise<void> {
    const { namespace, name } = this.o.caSecret;
    const secret = this.caInformer.get(`${namespace}/${name}`);
    const version = secret?.metadata?.resourceVersion ?? 'absent';
    if (version === this.caVersion && !force) return;
    this.caVersion = version;
    clearTimeout(this.caRetry);
    const trustDomain = this.o.policy.trustDomain;
    let warnings: string[] = [];
    let next: CaState;
    if (!secret) {
      next = {
        ok: false,
        message: `the CA Secret ${namespace}/${name} does not exist: create it with tls.crt and tls.key (e.g. from svidctl ca create), or install the chart with ca.bootstrap=true`,
      };
    } else {
      const data = secret.data ?? {};
      const text = (k: string) => (data[k] ? Buffer.from(data[k], 'base64').toString('utf8') : '');
      const material = {
        certPem: text('tls.crt'),
        keyPem: text('tls.key'),
        bundlePem: text('ca.crt') || undefined,
      };
      try {
        // Validates the Secret (the extra roots too) before the rotation sees it.
        const loaded = await loadCa(material, { extraRootsPem: this.o.extraRootsPem, trustDomain });
        this.o.metrics.caExpiry.set(loaded.notAfter.getTime() / 1000);
        warnings = loaded.warnings;
        try {
          await this.rotation.caLoaded(material);
        } catch (err) {
          if (err instanceof PkiError) throw err;
          // Reading or writing the rotation state failed (the API): try again shortly.
          this.o.log.error('CA rotation state could not be read or written; retrying', {
            error: errorText(err),
          });
          this.caRetry = setTimeout(() => void this.reloadCa(true), 5000);
          this.caRetry.unref();
          return;
        }
        next = { ok: true, ca: this.rotation.current() ?? loaded };
      } catch (err) {
        // Whatever loading throws is reported on every identity as CAUnavailable, never left unhandled.
        const why =
          err instanceof PkiError
            ? err.message
            : `it could not be read (${errorText(err).slice(0, 200)}): check that tls.crt and tls.key hold a valid CA certificate and its key`;
        next = { ok: false, message: `the CA Secret ${namespace}/${name} is unusable: ${why}` };
      }
    }
    if (next.ok)
      this.o.log.info('CA loaded', {
        ca: next.ca.subject,
        notAfter: next.ca.notAfter.toISOString(),
        sha256: next.ca.fingerprint,
        rotationPhase: this.rotation.phase,
        ...(warnings.length > 0 ? { warnings } : {}),
      });
    else this.o.log.error('CA unavailable', { why: next.message });
    this.setCaState(next);
  }

  /** The CA and trust bundle in use now, or why there is none (the pod-certificate signer reads it). */
  currentCa(): CaState {
    return this.caState;
  }

  /** Called whenever the CA, its trust bundle, or why it is unusable changes. */
  onCaChange(listener: () => void): void {
    this.caListeners.push(listener);
  }

  /** Starts the watches; resolves once every cache has been listed, the CA read, and identities queued. */
  async start(): Promise<void> {
    this.caInformer.start();
    for (const i of this.secrets.informers) i.start();
    await Promise.all([this.caInformer.synced, ...this.secrets.informers.map((i) => i.synced)]);
    await this.reloadCa();
    // Identities last, so their first reconcile already sees every managed Secret and the CA.
    for (const i of this.identities.informers) i.start();
    await Promise.all(this.identities.informers.map((i) => i.synced));
    this.synced = true;
    if (this.o.resyncMs > 0) {
      // Lowest priority: a resync looks for drift, so it never delays a renewal that is due.
      this.resyncTimer = setInterval(() => {
        for (const key of this.identities.keys()) this.enqueue(key, 'resync');
      }, this.o.resyncMs);
      this.resyncTimer.unref();
    }
  }

  /** True while every watch is alive: its stream is open, or it heard from the API server within `withinMs`. */
  healthy(withinMs: number): boolean {
    return [this.caInformer, ...this.secrets.informers, ...this.identities.informers].every((i) =>
      i.alive(withinMs),
    );
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  stop(): void {
    clearInterval(this.resyncTimer);
    clearTimeout(this.caRetry);
    this.rotation.stop();
    this.queue.stop();
    this.pacer.stop();
    this.events.stop();
    this.caInformer.stop();
    for (const i of [...this.secrets.informers, ...this.identities.informers]) i.stop();
  }
}

/** Whether identities must re-check their SVIDs: the CA, its bundle, or why it is unusable changed. */
function caStateChanged(before: CaState, after: CaState): boolean {
  if (before.ok && after.ok) {
    return (
      before.ca.fingerprint !== after.ca.fingerprint || before.ca.trustBundlePem !== after.ca.trustBundlePem
    );
  }
  if (!before.ok && !after.ok) return before.message !== after.message;
  return true;
}

export function identitySource(
  kc: KubeClient,
  namespace: string,
  transform: (wi: WorkloadIdentity) => WorkloadIdentity = slimIdentity,
): Source<WorkloadIdentity> {
  return {
    async list({ limit, continue: token }) {
      const res = await kc.list<WorkloadIdentity>(paths.custom(GROUP, VERSION, namespace, PLURAL), {
        query: { limit, continue: token },
      });
      return {
        items: res.items,
        resourceVersion: res.metadata.resourceVersion ?? '',
        continue: res.metadata.continue,
      };
    },
    watchPath: namespace
      ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`
      : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
    query: {},
    transform,
  };
}

function secretSource(
  kc: KubeClient,
  namespace: string,
  selectors: { labelSelector?: string; fieldSelector?: string },
  transform: (secret: k8s.V1Secret) => k8s.V1Secret = withoutManagedFields,
): Source<k8s.V1Secret> {
  return {
    async list({ limit, continue: token }) {
      const res = await kc.list<k8s.V1Secret>(namespace ? paths.secrets(namespace) : paths.allSecrets(), {
        query: { ...selectors, limit, continue: token },
      });
      return {
        items: res.items,
        resourceVersion: res.metadata.resourceVersion ?? '',
        continue: res.metadata.continue,
      };
    },
    watchPath: namespace ? `/api/v1/namespaces/${namespace}/secrets` : '/api/v1/secrets',
    query: Object.fromEntries(Object.entries(selectors).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >,
    transform,
  };
}
