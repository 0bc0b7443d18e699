// The pod-certificate signer's reconcile loop: PodCertificateRequests for identity.svid.dev/svid (selected by
// field, so no other signer's request is ever cached) and the Namespaces that opted in (selected by label)
// feed a work queue; each request is decided by decide.ts and answered with one status write. Generic
// machinery (informer, queue, rate limiter, events) comes from src/controller-runtime.
import type * as k8s from '@kubernetes/client-node';
import { paths, type KubeClient } from '../../kube/client.ts';
import { isConflict, isNotFound } from '../../kube/errors.ts';
import type { CaState } from '../workload-identity/plan.ts';
import type { EventRecorder } from '../workload-identity/events.ts';
import {
  errorText,
  Informer,
  keyOf,
  type InformerLogger,
  type Source,
} from '../../controller-runtime/informer.ts';
import type { RateLimiter } from '../../controller-runtime/limiter.ts';
import { WorkQueue, type HandlerResult } from '../../controller-runtime/queue.ts';
import { withoutManagedFields } from '../../controller-runtime/managed-fields.ts';
import { PkiError, signSvidForPublicKey } from '../../pki/index.ts';
import { decide, type Decision, type SignerPolicy } from './decide.ts';
import type { PodCertMetrics } from './metrics.ts';
import {
  OPT_IN_LABEL,
  OPT_IN_VALUE,
  PCR_GROUP,
  PCR_PLURAL,
  PCR_VERSION,
  SIGNER_NAME,
  type PcrCondition,
  type PodCertificateRequest,
} from './types.ts';

export interface SignerLogger extends InformerLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

/**
 * Paces issuance. Today the token bucket of src/controller-runtime/limiter.ts; the deadline-ordered pacing of
 * re-issuance (branch ca-rotation) plugs in here with `take(deadline)`, the request's beginRefreshAt
 * being irrelevant for a first issuance and its creation time the natural order.
 */
export interface IssuancePacer {
  take(): Promise<void>;
}

export interface PodCertSignerOptions {
  kc: KubeClient;
  policy: SignerPolicy;
  /** Namespaces opted in by the operator's flag, besides those labelled OPT_IN_LABEL=OPT_IN_VALUE. */
  optInNamespaces: readonly string[];
  ca: () => CaState;
  pacer: IssuancePacer | RateLimiter;
  concurrency: number;
  events: EventRecorder;
  metrics: PodCertMetrics;
  log: SignerLogger;
  now?: () => Date;
}

export class PodCertSigner {
  private readonly o: PodCertSignerOptions;
  private readonly kc: KubeClient;
  readonly requests: Informer<PodCertificateRequest>;
  readonly namespaces: Informer<k8s.V1Namespace>;
  private readonly queue: WorkQueue;
  private readonly nsHandlers: (() => void)[] = [];

  constructor(o: PodCertSignerOptions) {
    this.o = o;
    this.kc = o.kc;
    this.requests = new Informer(o.kc, 'podcertificaterequests', requestSource(o.kc), o.log);
    this.namespaces = new Informer(o.kc, 'namespaces/opted-in', namespaceSource(o.kc), o.log);
    this.queue = new WorkQueue(
      { concurrency: o.concurrency, baseDelayMs: 500, maxDelayMs: 60_000 },
      (key) => this.reconcile(key),
      (key, err, retryInMs) => {
        o.metrics.errors.inc();
        o.log.warn('pod certificate request: reconcile failed, retrying', {
          request: key,
          retryInMs,
          error: errorText(err),
        });
      },
    );
    this.requests.on((event, pcr) => {
      if (event === 'upsert') this.queue.add(keyOf(pcr));
    });
    this.namespaces.on((_event, ns) => {
      // A namespace that opts in (or out) re-decides its pending requests.
      for (const [key, pcr] of this.requests.cache) {
        if (pcr.metadata.namespace === ns.metadata?.name) this.queue.add(key);
      }
      for (const h of this.nsHandlers) h();
    });
  }

  /** Namespaces that may get pod certificates and the trust bundle ConfigMap. */
  optedIn(): string[] {
    const labelled = [...this.namespaces.cache.values()].map((n) => n.metadata?.name ?? '');
    return [...new Set([...this.o.optInNamespaces, ...labelled])].filter(Boolean).sort();
  }

  onNamespacesChanged(handler: () => void): void {
    this.nsHandlers.push(handler);
  }

  /** The CA changed: requests waiting for it are decided again. */
  caChanged(): void {
    for (const key of this.requests.cache.keys()) this.queue.add(key);
  }

  async start(): Promise<void> {
    this.namespaces.start();
    await this.namespaces.synced;
    this.requests.start();
    await this.requests.synced;
  }

  /** True while both watches are alive (a stream open, or the API server heard from within `withinMs`). */
  healthy(withinMs: number): boolean {
    return [this.requests, this.namespaces].every((i) => i.alive(withinMs));
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  stop(): void {
    this.queue.stop();
    this.requests.stop();
    this.namespaces.stop();
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  private async reconcile(key: string): Promise<HandlerResult> {
    const cached = this.requests.get(key);
    if (!cached) return undefined;
    const ns = cached.metadata.namespace;
    const optedIn = this.o.optInNamespaces.includes(ns) || this.namespaces.get(`/${ns}`) !== undefined;
    let decision = decide(cached, {
      policy: this.o.policy,
      namespaceOptedIn: optedIn,
      ca: this.o.ca(),
      now: this.now(),
    });
    if (decision.action === 'ignore') return undefined;
    if (decision.action === 'wait') {
      this.o.metrics.waiting.inc({ reason: decision.reason });
      this.o.log.warn('pod certificate request waits for the CA', { request: key, why: decision.message });
      return { requeueAfterMs: decision.retryAfterMs };
    }
    if (decision.action === 'issue') {
      // Paced like re-issuance so a wave of new pods cannot flood the API server; the decision is taken
      // again after the wait, against the CA current then.
      await this.o.pacer.take();
      const fresh = this.requests.get(key);
      if (!fresh) return undefined;
      decision = decide(fresh, {
        policy: this.o.policy,
        namespaceOptedIn: optedIn,
        ca: this.o.ca(),
        now: this.now(),
      });
      if (decision.action === 'ignore') return undefined;
      if (decision.action === 'wait') return { requeueAfterMs: decision.retryAfterMs };
    }
    const pcr = this.requests.get(key) ?? cached;
    const started = process.hrtime.bigint();
    const status = this.statusFor(pcr, decision);
    if (!status) return this.reconcileAgain(key);
    try {
      await this.kc.replace(paths.customStatus(PCR_GROUP, PCR_VERSION, ns, PCR_PLURAL, pcr.metadata.name), {
        ...pcr,
        apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
        kind: 'PodCertificateRequest',
        status,
      });
    } catch (err) {
      // 409: the request changed since it was cached; the watch brings the new version. 404: it is gone.
      if (isConflict(err)) return this.reconcileAgain(key);
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const outcome = status.conditions[0]?.type ?? '';
    const reason = status.conditions[0]?.reason ?? '';
    this.o.metrics.requests.inc({ outcome, reason });
    if (outcome === 'Issued') {
      this.o.metrics.issueSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
    const ref = {
      apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
      kind: 'PodCertificateRequest',
      name: pcr.metadata.name,
      namespace: ns,
      uid: pcr.metadata.uid,
    };
    const message = status.conditions[0]?.message ?? '';
    const meta = { request: key, pod: pcr.spec.podName, node: pcr.spec.nodeName, reason };
    if (outcome === 'Issued') {
      this.o.events.recordFor(ref, 'Normal', 'Issued', message);
      this.o.log.info('pod certificate issued', { ...meta, notAfter: status.notAfter });
    } else {
      this.o.events.recordFor(ref, 'Warning', outcome, message);
      this.o.log.warn(`pod certificate request ${outcome.toLowerCase()}`, { ...meta, why: message });
    }
    return undefined;
  }

  /** Once the watch has delivered the request's newer version (a 409), or the CA is back. */
  private reconcileAgain(_key: string): HandlerResult {
    return { requeueAfterMs: 200 + Math.floor(Math.random() * 300) };
  }

  /** The status that answers the request, or undefined when signing found the CA unusable after all. */
  private statusFor(
    pcr: PodCertificateRequest,
    decision: Exclude<Decision, { action: 'ignore' } | { action: 'wait' }>,
  ):
    | {
        conditions: PcrCondition[];
        certificateChain?: string;
        notBefore?: string;
        notAfter?: string;
        beginRefreshAt?: string;
      }
    | undefined {
    const condition = (type: string, reason: string, message: string): PcrCondition => ({
      type,
      status: 'True',
      reason,
      message: message.slice(0, 32_000),
      lastTransitionTime: new Date(Math.floor(this.now().getTime() / 1000) * 1000)
        .toISOString()
        .replace('.000Z', 'Z'),
      ...(pcr.metadata.generation !== undefined ? { observedGeneration: pcr.metadata.generation } : {}),
    });
    if (decision.action === 'deny')
      return { conditions: [condition('Denied', decision.reason, decision.message)] };
    if (decision.action === 'fail')
      return { conditions: [condition('Failed', decision.reason, decision.message)] };
    const ca = this.o.ca();
    if (!ca.ok) return undefined;
    let signed;
    try {
      signed = signSvidForPublicKey(ca.ca, {
        spiffeId: decision.spiffeId,
        spki: decision.spki,
        notBefore: decision.notBefore,
        notAfter: decision.notAfter,
      });
    } catch (err) {
      if (!(err instanceof PkiError)) throw err;
      return { conditions: [condition('Failed', err.code, err.message)] };
    }
    const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');
    return {
      conditions: [
        condition(
          'Issued',
          'Issued',
          `issued ${decision.spiffeId} (serial ${signed.serialNumber}), valid until ${iso(signed.notAfter)}, refresh from ${iso(decision.beginRefreshAt)}`,
        ),
      ],
      certificateChain: signed.certChainPem,
      notBefore: iso(signed.notBefore),
      notAfter: iso(signed.notAfter),
      beginRefreshAt: iso(decision.beginRefreshAt),
    };
  }
}

function requestSource(kc: KubeClient): Source<PodCertificateRequest> {
  const fieldSelector = `spec.signerName=${SIGNER_NAME}`;
  return {
    async list({ limit, continue: token }) {
      const res = await kc.list<PodCertificateRequest>(paths.custom(PCR_GROUP, PCR_VERSION, '', PCR_PLURAL), {
        query: { fieldSelector, limit, continue: token },
      });
      return {
        items: res.items,
        resourceVersion: res.metadata.resourceVersion ?? '',
        continue: res.metadata.continue,
      };
    },
    watchPath: `/apis/${PCR_GROUP}/${PCR_VERSION}/${PCR_PLURAL}`,
    query: { fieldSelector },
    transform: withoutManagedFields,
  };
}

function namespaceSource(kc: KubeClient): Source<k8s.V1Namespace> {
  const labelSelector = `${OPT_IN_LABEL}=${OPT_IN_VALUE}`;
  return {
    async list({ limit, continue: token }) {
      const res = await kc.list<k8s.V1Namespace>(paths.namespaces(), {
        query: { labelSelector, limit, continue: token },
      });
      return {
        items: res.items,
        resourceVersion: res.metadata.resourceVersion ?? '',
        continue: res.metadata.continue,
      };
    },
    watchPath: '/api/v1/namespaces',
    query: { labelSelector },
    transform: withoutManagedFields,
  };
}
