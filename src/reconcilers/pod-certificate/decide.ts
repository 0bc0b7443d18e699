// What the signer does with one PodCertificateRequest, decided without I/O: from the request, whether its
// namespace opted in, the CA (or why there is none), the configured duration and the clock.
import type { CaState } from '../workload-identity/plan.ts';
import { acceptPublicKey, CLOCK_SKEW_SECONDS, PkiError, spkiFromPkcs10 } from '../../pki/index.ts';
import { jitterSeconds } from '../../renewal/index.ts';
import { buildSpiffeId, SpiffeIdError } from '../../spiffe/index.ts';
import { OPT_IN_LABEL, OPT_IN_VALUE, outcomeOf, SIGNER_NAME, type PodCertificateRequest } from './types.ts';

/** The API server refuses an issued certificate that lives less than this (validation.go). */
export const MIN_LIFETIME_SECONDS = 3600;
/** beginRefreshAt must lie in [notBefore + 10 min, notAfter - 10 min] (validation.go). */
export const REFRESH_MARGIN_SECONDS = 600;

export interface SignerPolicy {
  trustDomain: string;
  /** --pod-certificate-duration: the longest lifetime issued; at least MIN_LIFETIME_SECONDS. */
  durationSeconds: number;
  /**
   * How long a request waits for an unusable CA to be fixed before it is Failed. Failed is final for the
   * pod (the kubelet does not ask again for it), so a CA Secret being replaced must not fail every pod
   * that asks in that moment; a CA that stays broken still fails requests instead of leaving them pending.
   */
  caGraceSeconds: number;
  /**
   * --pod-certificate-refresh-after: beginRefreshAt at notBefore + this (no jitter: the kubelet adds its own
   * 0-5 min) instead of the renewal rule. Used to see kubelet refreshes within minutes, e.g. in the e2e.
   */
  refreshAfterSeconds?: number;
}

export type Decision =
  | { action: 'ignore'; why: string }
  | { action: 'deny'; reason: DenyReason; message: string }
  | { action: 'fail'; reason: FailReason; message: string }
  | { action: 'wait'; retryAfterMs: number; reason: FailReason; message: string }
  | {
      action: 'issue';
      spiffeId: string;
      spki: Buffer;
      notBefore: Date;
      notAfter: Date;
      beginRefreshAt: Date;
    };

export type DenyReason = 'NamespaceNotOptedIn' | 'UnsupportedKeyType' | 'InvalidRequest' | 'InvalidIdentity';
export type FailReason = 'CAUnavailable' | 'CAExpiresTooSoon';

/**
 * Lifetime, validity window and refresh time for a request issued at `now` by `ca`. notBefore is backdated
 * by the clock-skew allowance (the API server accepts up to 5 minutes), and the lifetime counts from it, so
 * notAfter - notBefore never exceeds spec.maxExpirationSeconds. beginRefreshAt follows the renewal rule of
 * WorkloadIdentities: a third of the lifetime before expiry, minus a jitter fixed by the pod's UID, kept
 * inside the window the API server allows; with policy.refreshAfterSeconds, that long after notBefore.
 */
export function validityFor(
  pcr: PodCertificateRequest,
  policy: SignerPolicy,
  caWindow: { notBefore: Date; notAfter: Date },
  now: Date,
): { notBefore: Date; notAfter: Date; beginRefreshAt: Date } | { tooShort: string } {
  const requested = pcr.spec.maxExpirationSeconds ?? policy.durationSeconds;
  const lifetime = Math.floor(Math.min(requested, policy.durationSeconds));
  const nowS = Math.floor(now.getTime() / 1000);
  const notBeforeS = Math.max(nowS - CLOCK_SKEW_SECONDS, Math.ceil(caWindow.notBefore.getTime() / 1000));
  const caEndS = Math.floor(caWindow.notAfter.getTime() / 1000);
  const notAfterS = Math.min(notBeforeS + lifetime, caEndS);
  if (notAfterS - notBeforeS < MIN_LIFETIME_SECONDS) {
    return {
      tooShort: `the CA expires at ${caWindow.notAfter.toISOString()}, too soon for the 1 hour minimum lifetime of a pod certificate: rotate the CA Secret`,
    };
  }
  const life = notAfterS - notBeforeS;
  const renewBefore = life / 3;
  let refreshS =
    policy.refreshAfterSeconds !== undefined
      ? notBeforeS + policy.refreshAfterSeconds
      : Math.round(notAfterS - renewBefore - jitterSeconds(pcr.spec.podUID, renewBefore));
  refreshS = Math.min(
    Math.max(refreshS, notBeforeS + REFRESH_MARGIN_SECONDS),
    notAfterS - REFRESH_MARGIN_SECONDS,
  );
  return {
    notBefore: new Date(notBeforeS * 1000),
    notAfter: new Date(notAfterS * 1000),
    beginRefreshAt: new Date(refreshS * 1000),
  };
}

/** The holder's public key: from stubPKCS10Request (1.36 kubelet) or pkixPublicKey (deprecated field). */
export function requestedKey(pcr: PodCertificateRequest): Buffer {
  const { stubPKCS10Request, pkixPublicKey } = pcr.spec;
  if (stubPKCS10Request) return spkiFromPkcs10(Buffer.from(stubPKCS10Request, 'base64'));
  if (pkixPublicKey) return Buffer.from(pkixPublicKey, 'base64');
  throw new PkiError('BadRequest', 'the request has neither stubPKCS10Request nor pkixPublicKey');
}

export function decide(
  pcr: PodCertificateRequest,
  ctx: { policy: SignerPolicy; namespaceOptedIn: boolean; ca: CaState; now: Date },
): Decision {
  if (pcr.spec.signerName !== SIGNER_NAME) return { action: 'ignore', why: 'another signer' };
  const done = outcomeOf(pcr);
  if (done) return { action: 'ignore', why: `already ${done}` };
  const ns = pcr.metadata.namespace;
  if (!ctx.namespaceOptedIn) {
    return {
      action: 'deny',
      reason: 'NamespaceNotOptedIn',
      message: `namespace ${ns} has not opted in to pod certificates from ${SIGNER_NAME}: a cluster admin must label it (kubectl label namespace ${ns} ${OPT_IN_LABEL}=${OPT_IN_VALUE}) or add it to the operator's --pod-certificate-namespace`,
    };
  }
  let spiffeId: string;
  try {
    spiffeId = buildSpiffeId(ctx.policy.trustDomain, ns, pcr.spec.serviceAccountName);
  } catch (err) {
    if (!(err instanceof SpiffeIdError)) throw err;
    return {
      action: 'deny',
      reason: 'InvalidIdentity',
      message: `no SPIFFE ID can be made for service account ${ns}/${pcr.spec.serviceAccountName}: ${err.message}`,
    };
  }
  let spki: Buffer;
  try {
    spki = acceptPublicKey(requestedKey(pcr)).spki;
  } catch (err) {
    if (!(err instanceof PkiError)) throw err;
    return {
      action: 'deny',
      reason: err.code === 'UnsupportedKey' ? 'UnsupportedKeyType' : 'InvalidRequest',
      message: err.message,
    };
  }
  if (!ctx.ca.ok) {
    const created = Date.parse(pcr.metadata.creationTimestamp ?? '');
    const waited = Number.isFinite(created) ? ctx.now.getTime() - created : Infinity;
    const left = ctx.policy.caGraceSeconds * 1000 - waited;
    if (left > 0) {
      return {
        action: 'wait',
        retryAfterMs: Math.min(left, 5000),
        reason: 'CAUnavailable',
        message: `waiting up to ${Math.ceil(left / 1000)} s for the CA: ${ctx.ca.message}`,
      };
    }
    return {
      action: 'fail',
      reason: 'CAUnavailable',
      message: `${ctx.ca.message}; the pod's kubelet will ask again with a new request once the CA is fixed`,
    };
  }
  const window = validityFor(pcr, ctx.policy, ctx.ca.ca, ctx.now);
  if ('tooShort' in window) return { action: 'fail', reason: 'CAExpiresTooSoon', message: window.tooShort };
  return { action: 'issue', spiffeId, spki, ...window };
}
