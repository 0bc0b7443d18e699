// SPIFFE IDs of Kubernetes workloads. The SPIFFE-ID rules themselves live in the mTLS library package (one
// parser for the operator and the library).
import { parseSpiffeId, SpiffeIdError, validateTrustDomain } from '@svid-operator/mtls/spiffe-id';

// Kubernetes names: a namespace is an RFC 1123 label, a service account an RFC 1123 subdomain.
const K8S_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const K8S_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. The namespace and service account must be
 * valid Kubernetes names, which also keeps them inside the SPIFFE path character set.
 */
export function buildSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  validateTrustDomain(trustDomain);
  if (!K8S_LABEL.test(namespace)) {
    throw new SpiffeIdError(
      `namespace "${namespace}" is not a valid Kubernetes namespace name (RFC 1123 label)`,
    );
  }
  if (serviceAccount.length > 253 || !K8S_SUBDOMAIN.test(serviceAccount)) {
    throw new SpiffeIdError(
      `service account "${serviceAccount}" is not a valid Kubernetes name: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters`,
    );
  }
  const id = `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  parseSpiffeId(id);
  return id;
}
