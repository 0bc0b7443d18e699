// certificates.k8s.io/v1beta1 PodCertificateRequest as served by Kubernetes 1.35+ (KEP-4317), the fields
// this signer reads and writes; client-node 2.0.1 has no typed client for it. []byte fields are base64 in
// JSON. Reference: k8s.io/api/certificates/v1beta1/types.go and
// pkg/apis/certificates/validation/validation.go of v1.36.
export const PCR_GROUP = 'certificates.k8s.io';
export const PCR_VERSION = 'v1beta1';
export const PCR_PLURAL = 'podcertificaterequests';
export const CTB_PLURAL = 'clustertrustbundles';

/** The signer name pods put in a podCertificate projected volume. */
export const SIGNER_NAME = 'identity.svid.dev/svid';

/** Label on a Namespace that opts it in to pod certificates and the trust bundle ConfigMap. */
export const OPT_IN_LABEL = 'identity.svid.dev/pod-certificates';
export const OPT_IN_VALUE = 'enabled';

export interface PcrCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface PodCertificateRequest {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
  };
  spec: {
    signerName: string;
    podName: string;
    podUID: string;
    serviceAccountName: string;
    serviceAccountUID: string;
    nodeName: string;
    nodeUID: string;
    maxExpirationSeconds?: number;
    /** Deprecated in 1.36 in favour of stubPKCS10Request, still accepted with proofOfPossession. */
    pkixPublicKey?: string;
    proofOfPossession?: string;
    /** What the 1.36 kubelet sends: a PKCS#10 request whose signature is the proof of possession. */
    stubPKCS10Request?: string;
    unverifiedUserAnnotations?: Record<string, string>;
  };
  status?: {
    conditions?: PcrCondition[];
    certificateChain?: string;
    notBefore?: string;
    notAfter?: string;
    beginRefreshAt?: string;
  };
}

/** The three terminal condition types; the API server allows exactly one, with status True. */
export type PcrOutcome = 'Issued' | 'Denied' | 'Failed';

export function outcomeOf(pcr: PodCertificateRequest): PcrOutcome | undefined {
  for (const c of pcr.status?.conditions ?? []) {
    if (c.status === 'True' && (c.type === 'Issued' || c.type === 'Denied' || c.type === 'Failed'))
      return c.type;
  }
  return undefined;
}
