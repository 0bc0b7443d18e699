// Who may write which Secret, decided before the SVID itself is looked at (pure; the reconciler acts on it):
//  - never the operator's CA Secret;
//  - of several identities naming the same Secret, only the oldest (the others report SecretConflict);
//  - a managed Secret written for another identity (a younger one that lost the claim, or one that was
//    deleted or renamed its secretName) is taken over by the identity that now wins it;
//  - data keys the operator does not write are tampering: the Secret is rewritten without them.
import type * as k8s from '@kubernetes/client-node';
import type { SecretClaims } from './secret-claims.ts';
import { extraDataKeys } from './slim.ts';
import { KIND, MANAGED_BY_LABEL, MANAGED_BY_VALUE, type WorkloadIdentity } from './types.ts';

export type OwnershipDecision =
  | { kind: 'proceed' }
  | { kind: 'conflict'; message: string }
  | { kind: 'rewrite'; cause: 'OwnerChanged' | 'Tampered'; message: string };

export interface OwnershipInput {
  wi: WorkloadIdentity;
  /** The target Secret as cached (only the SVID's data keys kept), if any. */
  secret: k8s.V1Secret | undefined;
  caSecret: { namespace: string; name: string };
  claims: SecretClaims;
}

export function ownershipDecision({ wi, secret, caSecret, claims }: OwnershipInput): OwnershipDecision {
  const ns = wi.metadata.namespace;
  const target = `${ns}/${wi.spec.secretName}`;
  if (ns === caSecret.namespace && wi.spec.secretName === caSecret.name) {
    return {
      kind: 'conflict',
      message: `secretName ${wi.spec.secretName} is the operator's CA Secret (${target}); an identity may never write it: choose another secretName`,
    };
  }
  const winner = claims.winner(ns, wi.spec.secretName);
  if (winner && winner.uid !== wi.metadata.uid) {
    return {
      kind: 'conflict',
      message: `Secret ${target} is also the secretName of WorkloadIdentity ${winner.name}, which is older (created ${winner.created}); when identities share a secretName the oldest gets it: choose another secretName for this one`,
    };
  }
  if (!secret || secret.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) return { kind: 'proceed' };
  const controller = secret.metadata?.ownerReferences?.find((r) => r.controller);
  if (controller?.kind === KIND && controller.uid !== wi.metadata.uid) {
    return {
      kind: 'rewrite',
      cause: 'OwnerChanged',
      message: `the Secret was written for WorkloadIdentity ${controller.name} (uid ${controller.uid}), which no longer gets it; it is taken over`,
    };
  }
  const extra = extraDataKeys(secret);
  if (controller?.uid === wi.metadata.uid && extra > 0) {
    return {
      kind: 'rewrite',
      cause: 'Tampered',
      message: `the Secret holds ${extra} data key${extra === 1 ? '' : 's'} the operator does not write; that counts as tampering: the Secret is rewritten without ${extra === 1 ? 'it' : 'them'}`,
    };
  }
  return { kind: 'proceed' };
}
