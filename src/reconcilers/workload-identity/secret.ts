import type * as k8s from '@kubernetes/client-node';
import type { IssuedSvid, SecretSvid } from '../../pki/index.ts';
import {
  ANNOTATION_CA,
  ANNOTATION_NOT_AFTER,
  ANNOTATION_SERIAL,
  ANNOTATION_SPIFFE_ID,
  API_VERSION,
  KIND,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OWNER_LABEL,
  type WorkloadIdentity,
} from './types.ts';
import type { SecretState } from './plan.ts';
import { rfc3339 } from './status.ts';

const decode = (v: string | undefined) =>
  v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');

/**
 * Whether a Secret is this WorkloadIdentity's: the managed-by label and a controller ownerReference to its
 * UID. Anything else with the target name belongs to someone else and is never touched.
 */
export function secretState(secret: k8s.V1Secret | undefined, wi: WorkloadIdentity): SecretState {
  if (!secret) return { kind: 'absent' };
  const labelled = secret.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
  const owner = secret.metadata?.ownerReferences?.find((r) => r.controller);
  if (!labelled)
    return { kind: 'foreign', why: `it lacks the label ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}` };
  if (!owner || owner.uid !== wi.metadata.uid) {
    return {
      kind: 'foreign',
      why: owner ? `it is controlled by ${owner.kind} ${owner.name}` : 'it has no controller ownerReference',
    };
  }
  const data = secret.data ?? {};
  const svid: SecretSvid = {
    certChainPem: decode(data['tls.crt']),
    keyPem: decode(data['tls.key']),
    bundlePem: decode(data['ca.crt']),
  };
  return { kind: 'owned', svid };
}

/** The kubernetes.io/tls Secret for an issued SVID (also usable by nginx, Envoy and cert-manager tooling). */
export function buildSecret(
  wi: WorkloadIdentity,
  svid: IssuedSvid,
  caFingerprint: string,
  existing: k8s.V1Secret | undefined,
): k8s.V1Secret {
  const template = wi.spec.secretTemplate ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name: wi.spec.secretName,
      namespace: wi.metadata.namespace,
      // Optimistic concurrency: an update fails with 409 if someone changed the Secret since it was read.
      resourceVersion: existing?.metadata?.resourceVersion,
      // The operator's own labels are written last so a template cannot take them over.
      labels: { ...template.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: wi.metadata.name },
      annotations: {
        ...template.annotations,
        [ANNOTATION_SPIFFE_ID]: svid.spiffeId,
        [ANNOTATION_SERIAL]: svid.serialNumber,
        [ANNOTATION_NOT_AFTER]: rfc3339(svid.notAfter),
        [ANNOTATION_CA]: caFingerprint,
      },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: wi.metadata.name,
          uid: wi.metadata.uid,
          controller: true,
          blockOwnerDeletion: false,
        },
      ],
    },
    data: svidData(svid),
  };
}

/** The Secret data of an SVID, base64 as the API stores it. */
export function svidData(svid: IssuedSvid): Record<string, string> {
  return {
    'tls.crt': Buffer.from(svid.certChainPem).toString('base64'),
    'tls.key': Buffer.from(svid.keyPem).toString('base64'),
    'ca.crt': Buffer.from(svid.bundlePem).toString('base64'),
  };
}

/**
 * A strategic merge patch that writes only what the operator owns on an existing Secret: its labels and
 * annotations (and the template's), its controller ownerReference, and the three SVID data keys. Labels,
 * annotations and ownerReferences other tools added are kept (a full replace dropped them). The
 * resourceVersion makes it conditional: a Secret changed since it was read fails with 409. `removeKeys`
 * are data keys to delete (tampering); `previousController` is the UID of another identity's controller
 * reference to drop when the Secret is taken over.
 */
export function secretPatch(
  wi: WorkloadIdentity,
  svid: IssuedSvid,
  caFingerprint: string,
  resourceVersion: string | undefined,
  opts: { removeKeys?: readonly string[]; previousController?: string } = {},
): Record<string, unknown> {
  const full = buildSecret(wi, svid, caFingerprint, undefined);
  const data: Record<string, string | null> = { ...full.data };
  for (const key of opts.removeKeys ?? []) if (!(key in data)) data[key] = null;
  const ownerReferences: Record<string, unknown>[] = [...(full.metadata?.ownerReferences ?? [])].map((r) => ({
    ...r,
  }));
  if (opts.previousController && opts.previousController !== wi.metadata.uid) {
    ownerReferences.push({ uid: opts.previousController, $patch: 'delete' });
  }
  return {
    metadata: {
      resourceVersion,
      labels: full.metadata?.labels,
      annotations: full.metadata?.annotations,
      ownerReferences,
    },
    data,
  };
}
