import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { RateLimiter } from '../../controller-runtime/limiter.ts';
import { paths, type KubeClient } from '../../kube/client.ts';
import { API_VERSION, KIND, type WorkloadIdentity } from './types.ts';

export type EventReason =
  'Issued' | 'Renewed' | 'Failed' | 'PolicyViolation' | 'SecretConflict' | 'InvalidSpec' | 'CAUnavailable';

export interface EventRecorderOptions {
  /** Events sent per second, on a budget of their own: Secrets and status never wait behind them. */
  ratePerSecond: number;
  /** Events waiting beyond this are dropped, Normal ones first. */
  backlog: number;
  onSent: () => void;
  onDropped: () => void;
  onError: (err: unknown) => void;
}

/**
 * Kubernetes Events on WorkloadIdentities (kubectl describe shows them), sent in the background. Events are
 * best-effort in Kubernetes, and the status and the log say the same thing, so a wave of issuances never
 * waits on them: past the backlog a Normal event is dropped and a Warning displaces the oldest Normal one.
 */
export class EventRecorder {
  private readonly json: KubeClient;
  private readonly instance: string;
  private readonly o: EventRecorderOptions;
  private readonly limiter: RateLimiter;
  private readonly queue: k8s.CoreV1Event[] = [];
  private sending = false;
  private stopped = false;

  constructor(kc: KubeClient, instance: string, o: EventRecorderOptions) {
    this.json = kc;
    this.instance = instance;
    this.o = o;
    this.limiter = new RateLimiter(o.ratePerSecond);
  }

  get pending(): number {
    return this.queue.length;
  }

  record(wi: WorkloadIdentity, type: 'Normal' | 'Warning', reason: EventReason, message: string): void {
    this.recordFor(
      {
        apiVersion: API_VERSION,
        kind: KIND,
        name: wi.metadata.name,
        namespace: wi.metadata.namespace,
        uid: wi.metadata.uid,
        resourceVersion: wi.metadata.resourceVersion,
      },
      type,
      reason,
      message,
    );
  }

  /** An event on any namespaced object (the pod-certificate signer's PodCertificateRequests). */
  recordFor(
    object: k8s.V1ObjectReference,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void {
    if (this.stopped) return;
    if (this.queue.length >= this.o.backlog) {
      const normal = type === 'Warning' ? this.queue.findIndex((e) => e.type === 'Normal') : -1;
      this.o.onDropped();
      if (normal < 0) return;
      this.queue.splice(normal, 1);
    }
    const now = new Date();
    this.queue.push({
      metadata: {
        name: `${object.name}.${randomBytes(8).toString('hex')}`,
        namespace: object.namespace,
      },
      involvedObject: object,
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: 'svid-operator' },
      reportingComponent: 'svid-operator',
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
    if (!this.sending) void this.send();
  }

  /** Drops what is still queued: on shutdown the events are not worth delaying the exit for. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  private async send(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.stopped) {
        await this.limiter.take();
        const event = this.queue.shift();
        if (!event) break;
        try {
          await this.json.create(paths.events(event.metadata.namespace ?? ''), event);
          this.o.onSent();
        } catch (err) {
          this.o.onError(err);
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
