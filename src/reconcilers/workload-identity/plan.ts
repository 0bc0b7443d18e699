// What one reconcile should do, decided without I/O: from the WorkloadIdentity, the current CA (or why
// there is none), the Secret as read, and the clock.
import { X509Certificate } from 'node:crypto';
import {
  keySpecFrom,
  verifySvid,
  type KeySpec,
  type LoadedCa,
  type SecretSvid,
  type SvidFacts,
} from '../../pki/index.ts';
import { checkDnsNames } from '../../policy/index.ts';
import { earliestRenewal, resolveLifetime, type DurationBounds } from '../../renewal/index.ts';
import { buildSpiffeId } from '../../spiffe/index.ts';
import { ANNOTATION_RENEW_REQUEST, pendingRenewRequest } from './renew-request.ts';
import type { FailureReason, WorkloadIdentity } from './types.ts';

export interface IdentityPolicy {
  trustDomain: string;
  clusterDomain: string;
  allowedDnsPatterns: readonly string[];
  bounds: DurationBounds;
}

export type CaState = { ok: true; ca: LoadedCa } | { ok: false; message: string };

/** The target Secret as the operator found it. */
export type SecretState =
  | { kind: 'absent' }
  | { kind: 'foreign'; why: string }
  /** `facts`: what its tls.crt and tls.key hold, judged against the CA given to plan() (svid-memory.ts). */
  | { kind: 'owned'; svid: SecretSvid; facts?: SvidFacts };

export interface Desired {
  spiffeId: string;
  dnsNames: string[];
  key: KeySpec;
  durationSeconds: number;
  renewBeforeSeconds: number;
  /** renewBefore was moved into the operator's bounds: how, for the status. */
  adjusted?: string;
}

export type Plan =
  | { action: 'fail'; reason: FailureReason; message: string; spiffeId?: string }
  | {
      action: 'keep';
      desired: Desired;
      renewalTime: Date;
      serialNumber: string;
      notBefore: Date;
      notAfter: Date;
      /**
       * From when the renewal may be taken early if the issuance rate has room (earliestRenewal); absent
       * when a new SVID could not outlive this one by its full duration (the CA expires first).
       */
      earlyFrom?: Date;
    }
  | {
      /** Only the trust bundle changed (a CA rotation): rewrite ca.crt, keep the certificate and its key. */
      action: 'rebundle';
      desired: Desired;
      renewalTime: Date;
      serialNumber: string;
      notBefore: Date;
      notAfter: Date;
    }
  | { action: 'issue'; desired: Desired; cause: string; message: string; create: boolean };

/** The spec turned into what to issue, or the reason it cannot be. */
export function desiredFor(
  wi: WorkloadIdentity,
  policy: IdentityPolicy,
): { ok: true; desired: Desired } | { ok: false; reason: FailureReason; message: string; spiffeId?: string } {
  let spiffeId: string;
  try {
    spiffeId = buildSpiffeId(policy.trustDomain, wi.metadata.namespace, wi.spec.serviceAccountName);
  } catch (err) {
    return { ok: false, reason: 'InvalidSpec', message: (err as Error).message };
  }
  const lifetime = resolveLifetime(wi.spec, policy.bounds);
  if (!lifetime.ok) return { ok: false, reason: 'InvalidSpec', message: lifetime.message, spiffeId };
  let key: KeySpec;
  try {
    key = keySpecFrom(wi.spec.privateKey?.algorithm ?? 'ECDSA', wi.spec.privateKey?.size);
  } catch (err) {
    return { ok: false, reason: 'InvalidSpec', message: (err as Error).message, spiffeId };
  }
  const dnsNames = [...new Set(wi.spec.dnsNames ?? [])];
  const violations = checkDnsNames(dnsNames, {
    namespace: wi.metadata.namespace,
    clusterDomain: policy.clusterDomain,
    allowedPatterns: policy.allowedDnsPatterns,
  });
  if (violations.length > 0) {
    return {
      ok: false,
      reason: 'PolicyViolation',
      message: violations.map((v) => v.message).join('; '),
      spiffeId,
    };
  }
  return { ok: true, desired: { spiffeId, dnsNames, key, ...lifetime.lifetime } };
}

export function plan(
  wi: WorkloadIdentity,
  policy: IdentityPolicy,
  ca: CaState,
  secret: SecretState,
  now: Date,
): Plan {
  const d = desiredFor(wi, policy);
  if (!d.ok) return { action: 'fail', reason: d.reason, message: d.message, spiffeId: d.spiffeId };
  const { desired } = d;
  if (secret.kind === 'foreign') {
    return {
      action: 'fail',
      reason: 'SecretConflict',
      message: `Secret ${wi.metadata.namespace}/${wi.spec.secretName} exists and is not managed by this WorkloadIdentity (${secret.why}); the operator never overwrites it: delete or rename it, or choose another secretName`,
      spiffeId: desired.spiffeId,
    };
  }
  if (!ca.ok)
    return { action: 'fail', reason: 'CAUnavailable', message: ca.message, spiffeId: desired.spiffeId };
  if (secret.kind === 'absent') {
    return { action: 'issue', desired, cause: 'Missing', message: 'the Secret does not exist', create: true };
  }
  // The bundle is compared apart from the certificate, so that a bundle-only change (a CA rotation's first
  // and last phases) rewrites ca.crt alone instead of issuing a new certificate and key.
  const bundleStale = secret.svid.bundlePem !== ca.ca.trustBundlePem;
  const svid = bundleStale ? { ...secret.svid, bundlePem: ca.ca.trustBundlePem } : secret.svid;
  const facts = secret.facts;
  const decision = verifySvid(svid, { ...desired, uid: wi.metadata.uid }, ca.ca, { now, facts });
  if (decision.action === 'issue') {
    const leaf =
      decision.reason !== 'Expiring'
        ? undefined
        : facts?.kind === 'parsed'
          ? facts
          : leafFacts(svid.certChainPem);
    const clamped = leaf && clampedNotAfter(leaf.notAfter, ca.ca.notAfter, now);
    if (!leaf || !clamped) {
      return { action: 'issue', desired, cause: decision.reason, message: decision.message, create: false };
    }
    // Cut to the CA's expiry: a new SVID from the same CA would end at the same instant, so re-issuing now
    // only loops. It stays until the CA changes (a new CA re-issues it at once) or it expires.
    const kept = {
      desired,
      renewalTime: clamped,
      serialNumber: leaf.serialNumber,
      notBefore: new Date(leaf.notBefore),
      notAfter: clamped,
    };
    return bundleStale ? { action: 'rebundle', ...kept } : { action: 'keep', ...kept };
  }
  const requested = pendingRenewRequest(wi);
  if (requested !== undefined) {
    return {
      action: 'issue',
      desired,
      cause: 'RenewRequested',
      message: `a re-issue was requested with the annotation ${ANNOTATION_RENEW_REQUEST}=${JSON.stringify(requested.slice(0, 64))}${requested.length > 64 ? '…' : ''}`,
      create: false,
    };
  }
  const kept = {
    desired,
    renewalTime: decision.renewalTime,
    serialNumber: decision.serialNumber,
    notBefore: decision.notBefore,
    notAfter: decision.notAfter,
  };
  if (bundleStale) return { action: 'rebundle', ...kept };
  // An early renewal only where the new SVID gets its full lifetime: one cut to the CA's expiry would end
  // no later than this one, and renewing it early would only repeat.
  const fullLifetime = ca.ca.notAfter.getTime() - now.getTime() >= desired.durationSeconds * 1000;
  if (!fullLifetime) return { action: 'keep', ...kept };
  const earlyFrom = earliestRenewal(
    decision.renewalTime,
    decision.notAfter,
    desired.durationSeconds,
    desired.renewBeforeSeconds,
  );
  return { action: 'keep', ...kept, earlyFrom };
}

/** Why an SVID renewed ahead of its renewalTime was (the issuance's message). */
export function earlyRenewalMessage(renewal: Date, now: Date): string {
  return `renewal was due at ${renewal.toISOString()}; taken ${Math.round((renewal.getTime() - now.getTime()) / 1000)}s early because more renewals fall due before then than --issuance-rate grants in time`;
}

/** The leaf's notAfter when it equals the CA's (the lifetime was cut to it) and is still ahead. */
function clampedNotAfter(leafNotAfter: number, caNotAfter: Date, now: Date): Date | undefined {
  const notAfter = new Date(leafNotAfter);
  return notAfter.getTime() === caNotAfter.getTime() && notAfter > now ? notAfter : undefined;
}

/** The serial and validity of the first certificate in a chain (an Expiring SVID reached verification: it parses). */
function leafFacts(
  chainPem: string | undefined,
): { serialNumber: string; notBefore: number; notAfter: number } | undefined {
  if (!chainPem) return undefined;
  const leaf = new X509Certificate(chainPem);
  return {
    serialNumber: leaf.serialNumber.toLowerCase(),
    notBefore: new Date(leaf.validFrom).getTime(),
    notAfter: new Date(leaf.validTo).getTime(),
  };
}

/**
 * When status says renewal is due for an SVID just issued: its renewal time, unless its lifetime was cut to
 * the CA's expiry and that time has already passed; then it is kept until it expires (see plan()).
 */
export function scheduledRenewal(renewal: Date, notAfter: Date, clampedToCa: boolean, now: Date): Date {
  return clampedToCa && renewal <= now ? notAfter : renewal;
}

// Re-issuance causes that leave the workload a working SVID meanwhile: only the CA or the clock moved.
const PACEABLE: ReadonlySet<string> = new Set(['WrongIssuer', 'BundleChanged', 'Expiring']);

/**
 * Whether an issuance waits for the --issuance-rate budget. A workload that still holds a valid SVID can
 * wait its turn, which keeps a CA change from flooding the API server; a missing, broken or outdated SVID
 * keeps a pod from starting or from talking, so it is issued at once (the API QPS limit still bounds it).
 * Neither does an SVID close to expiry wait (less than half its renewBefore left): pacing must never be
 * what lets it expire.
 */
export function isPaced(
  cause: string,
  currentNotAfter: Date | undefined,
  now: Date,
  renewBeforeSeconds = 0,
): boolean {
  if (!PACEABLE.has(cause) || currentNotAfter === undefined) return false;
  return currentNotAfter.getTime() - now.getTime() > (renewBeforeSeconds * 1000) / 2;
}

/**
 * When to retry a failed issuance: exponential from 1 s, capped at 5 minutes and at a quarter of the
 * time the current certificate has left, so a valid certificate never expires while retries could still
 * succeed.
 */
/**
 * The longest wait before retrying a renewal whose write failed while the SVID in use is still valid: a
 * quarter of its time left (as retryDelayMs caps an issuance failure), so several retries come before it
 * expires however long the failures' backoff has grown. Undefined once it expired (or there is none): the
 * backoff alone then spaces the retries.
 */
export function retryWithinMs(notAfter: Date | undefined, now: Date): number | undefined {
  if (!notAfter || Number.isNaN(notAfter.getTime())) return undefined;
  const left = notAfter.getTime() - now.getTime();
  return left > 0 ? left / 4 : undefined;
}

export function retryDelayMs(failures: number, notAfter: Date | undefined, now: Date): number {
  const exponential = Math.min(1000 * 2 ** Math.max(0, failures - 1), 5 * 60_000);
  if (!notAfter) return exponential;
  const left = notAfter.getTime() - now.getTime();
  return Math.max(1000, Math.min(exponential, left / 4));
}
