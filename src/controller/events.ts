import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { API_VERSION, KIND, type WorkloadIdentity } from './types.ts';

export type EventReason =
  'Issued' | 'Renewed' | 'Failed' | 'PolicyViolation' | 'SecretConflict' | 'InvalidSpec' | 'CAUnavailable';

/** Kubernetes Events on WorkloadIdentities (kubectl describe shows them). Failures to record are logged, never fatal. */
export class EventRecorder {
  private readonly core: k8s.CoreV1Api;
  private readonly instance: string;
  private readonly onError: (err: unknown) => void;

  constructor(kc: k8s.KubeConfig, instance: string, onError: (err: unknown) => void) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.instance = instance;
    this.onError = onError;
  }

  async record(
    wi: WorkloadIdentity,
    type: 'Normal' | 'Warning',
    reason: EventReason,
    message: string,
  ): Promise<void> {
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace: wi.metadata.namespace,
        body: {
          metadata: {
            name: `${wi.metadata.name}.${randomBytes(8).toString('hex')}`,
            namespace: wi.metadata.namespace,
          },
          involvedObject: {
            apiVersion: API_VERSION,
            kind: KIND,
            name: wi.metadata.name,
            namespace: wi.metadata.namespace,
            uid: wi.metadata.uid,
            resourceVersion: wi.metadata.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: 'svid-operator' },
          reportingComponent: 'svid-operator',
          reportingInstance: this.instance,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.onError(err);
    }
  }
}
