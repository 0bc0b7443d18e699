import { Counter, Histogram, type Registry } from 'prom-client';

/** Metrics of the pod-certificate signer, on the operator's registry. Labels carry no names of pods. */
export class PodCertMetrics {
  readonly requests: Counter<'outcome' | 'reason'>;
  readonly waiting: Counter<'reason'>;
  readonly errors: Counter;
  readonly issueSeconds: Histogram;
  readonly trustWrites: Counter<'kind'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'svid_operator_pod_certificate_requests_total',
      help: 'PodCertificateRequests answered, by outcome (Issued, Denied, Failed) and reason',
      labelNames: ['outcome', 'reason'],
      registers,
    });
    this.waiting = new Counter({
      name: 'svid_operator_pod_certificate_waits_total',
      help: 'Times a PodCertificateRequest was held back (e.g. the CA is unusable within its grace period)',
      labelNames: ['reason'],
      registers,
    });
    this.errors = new Counter({
      name: 'svid_operator_pod_certificate_errors_total',
      help: 'Failed attempts to answer a PodCertificateRequest (API errors), each retried with backoff',
      registers,
    });
    this.issueSeconds = new Histogram({
      name: 'svid_operator_pod_certificate_issue_duration_seconds',
      help: 'Time to sign a pod certificate and write the request status',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.trustWrites = new Counter({
      name: 'svid_operator_trust_bundle_writes_total',
      help: 'Writes of published trust bundles, by kind (ClusterTrustBundle, ConfigMap)',
      labelNames: ['kind'],
      registers,
    });
  }
}
