// Pod certificates (KEP-4317): the operator as the signer identity.svid.dev/svid, and the trust bundle
// published for pods that use it. Wired into the operator by main.ts when --pod-certificate-signer=true.
import type { KubeClient } from '../../kube/client.ts';
import type { Registry } from 'prom-client';
import type { CaState } from '../workload-identity/plan.ts';
import { EventRecorder } from '../workload-identity/events.ts';
import { errorText } from '../../controller-runtime/informer.ts';
import { RateLimiter } from '../../controller-runtime/limiter.ts';
import { TrustPublisher } from '../../trust/publisher.ts';
import { PodCertMetrics } from './metrics.ts';
import { PodCertSigner, type SignerLogger } from './signer.ts';

export { SIGNER_NAME, OPT_IN_LABEL, OPT_IN_VALUE } from './types.ts';

/** How long a request waits for an unusable CA before it is Failed (see SignerPolicy.caGraceSeconds). */
export const CA_GRACE_SECONDS = 30;
/** spiffe_refresh_hint of the published SPIFFE bundle, and how often the published bundles are re-checked. */
export const TRUST_REFRESH_SECONDS = 300;

export interface PodCertificatesOptions {
  kc: KubeClient;
  trustDomain: string;
  durationSeconds: number;
  /** --pod-certificate-refresh-after (SignerPolicy.refreshAfterSeconds); undefined: the renewal rule. */
  refreshAfterSeconds?: number;
  namespaces: readonly string[];
  /** Issuances per second at most (the operator's --issuance-rate). */
  issuanceRate: number;
  concurrency: number;
  ca: () => CaState;
  onCaChange: (listener: () => void) => void;
  registry: Registry;
  instance: string;
  log: SignerLogger;
}

export interface PodCertificates {
  start(): Promise<void>;
  healthy(withinMs: number): boolean;
  idle(): Promise<void>;
  stop(): void;
}

export function createPodCertificates(o: PodCertificatesOptions): PodCertificates {
  const metrics = new PodCertMetrics(o.registry);
  const events = new EventRecorder(o.kc, o.instance, {
    ratePerSecond: 10,
    backlog: 100,
    onSent: () => undefined,
    onDropped: () => undefined,
    onError: (err) => o.log.warn('recording an event failed', { error: errorText(err) }),
  });
  const signer = new PodCertSigner({
    kc: o.kc,
    policy: {
      trustDomain: o.trustDomain,
      durationSeconds: o.durationSeconds,
      refreshAfterSeconds: o.refreshAfterSeconds,
      caGraceSeconds: CA_GRACE_SECONDS,
    },
    optInNamespaces: o.namespaces,
    ca: o.ca,
    pacer: new RateLimiter(o.issuanceRate),
    concurrency: o.concurrency,
    events,
    metrics,
    log: o.log,
  });
  const publisher = new TrustPublisher({
    kc: o.kc,
    roots: () => {
      const ca = o.ca();
      return ca.ok ? ca.ca.trustBundlePem : undefined;
    },
    namespaces: () => signer.optedIn(),
    clusterTrustBundle: true,
    refreshHintSeconds: TRUST_REFRESH_SECONDS,
    resyncMs: TRUST_REFRESH_SECONDS * 1000,
    onWrite: (kind) => metrics.trustWrites.inc({ kind }),
    log: o.log,
  });
  o.onCaChange(() => {
    signer.caChanged();
    publisher.sync();
  });
  signer.onNamespacesChanged(() => publisher.sync());
  return {
    async start() {
      await signer.start();
      publisher.sync();
    },
    healthy: (withinMs) => signer.healthy(withinMs),
    idle: () => signer.idle(),
    stop() {
      publisher.stop();
      signer.stop();
      events.stop();
    },
  };
}
