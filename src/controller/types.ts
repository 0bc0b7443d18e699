// The WorkloadIdentity resource as the operator sees it, and the names it writes on Secrets.

export const GROUP = 'identity.svid.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'workloadidentities';
export const KIND = 'WorkloadIdentity';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** On every Secret the operator manages; the Secret watch selects on it, so it never caches other Secrets. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'svid-operator';
/** Name of the owning WorkloadIdentity (same namespace), so a Secret event finds its owner without a lookup. */
export const OWNER_LABEL = `${GROUP}/workload-identity`;
export const ANNOTATION_SPIFFE_ID = `${GROUP}/spiffe-id`;
export const ANNOTATION_SERIAL = `${GROUP}/serial-number`;
export const ANNOTATION_NOT_AFTER = `${GROUP}/not-after`;
export const ANNOTATION_CA = `${GROUP}/ca-fingerprint`;

export interface WorkloadIdentitySpec {
  serviceAccountName: string;
  secretName: string;
  duration?: string;
  renewBefore?: string;
  dnsNames?: string[];
  privateKey?: { algorithm?: string; size?: number };
  secretTemplate?: { labels?: Record<string, string>; annotations?: Record<string, string> };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface WorkloadIdentityStatus {
  spiffeID?: string;
  serialNumber?: string;
  notBefore?: string;
  notAfter?: string;
  renewalTime?: string;
  revision?: number;
  observedGeneration?: number;
  failedIssuanceAttempts?: number;
  lastFailureTime?: string;
  /** The renew-request annotation value last honoured (see renew-request.ts). */
  lastRenewRequest?: string;
  conditions?: Condition[];
}

export interface WorkloadIdentity {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    creationTimestamp?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec: WorkloadIdentitySpec;
  status?: WorkloadIdentityStatus;
}

/** Ready=False reasons, as written on status and in events. */
export type FailureReason =
  'InvalidSpec' | 'PolicyViolation' | 'SecretConflict' | 'CAUnavailable' | 'IssuanceFailed';
