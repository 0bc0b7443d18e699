import { createHash } from 'node:crypto';
import { formatDuration, parseDuration } from './duration.ts';

export const DEFAULT_DURATION_SECONDS = 3600;

export interface DurationBounds {
  minSeconds: number;
  maxSeconds: number;
  /** The shortest renewBefore (operator config --min-renew-before, default 1 minute). */
  minRenewBeforeSeconds?: number;
}

export const DEFAULT_MIN_RENEW_BEFORE_SECONDS = 60;
/** renewBefore is at most this fraction of the duration (the CRD's CEL rule says the same). */
export const MAX_RENEW_BEFORE_FRACTION = 0.5;

export interface Lifetime {
  durationSeconds: number;
  renewBeforeSeconds: number;
  /** Set when spec.renewBefore was outside the bounds and was moved into them: says how, for the status. */
  adjusted?: string;
}

/**
 * spec.duration and spec.renewBefore with defaults applied (1h, and a third of the duration) and checked
 * against the operator's bounds. renewBefore is kept within [min-renew-before, duration/2]: a longer one
 * renews so early that the jitter could move renewal before issuance (a re-issue loop), a shorter one leaves
 * no time to retry. An object stored before the CRD's rule existed is moved into the bounds, with a note for
 * its status, rather than refused (refusing would stop renewing a running workload). Returns the problem as a
 * message for the status instead of throwing.
 */
export function resolveLifetime(
  spec: { duration?: string; renewBefore?: string },
  bounds: DurationBounds,
): { ok: true; lifetime: Lifetime } | { ok: false; message: string } {
  let durationSeconds: number;
  let requested: number;
  try {
    durationSeconds = spec.duration ? parseDuration(spec.duration) : DEFAULT_DURATION_SECONDS;
    requested = spec.renewBefore ? parseDuration(spec.renewBefore) : durationSeconds / 3;
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  if (durationSeconds < bounds.minSeconds || durationSeconds > bounds.maxSeconds) {
    return {
      ok: false,
      message: `duration ${formatDuration(durationSeconds)} is outside the operator's bounds [${formatDuration(bounds.minSeconds)}, ${formatDuration(bounds.maxSeconds)}]: choose a duration within them`,
    };
  }
  if (!(requested > 0)) return { ok: false, message: 'renewBefore must be positive' };
  const min = bounds.minRenewBeforeSeconds ?? DEFAULT_MIN_RENEW_BEFORE_SECONDS;
  const max = durationSeconds * MAX_RENEW_BEFORE_FRACTION;
  if (min > max) {
    return {
      ok: false,
      message: `duration ${formatDuration(durationSeconds)} is too short to renew at least ${formatDuration(min)} before expiry (the operator's --min-renew-before) and at most half-way: choose a duration of at least ${formatDuration(min / MAX_RENEW_BEFORE_FRACTION)}`,
    };
  }
  const renewBeforeSeconds = Math.min(max, Math.max(min, requested));
  if (renewBeforeSeconds === requested)
    return { ok: true, lifetime: { durationSeconds, renewBeforeSeconds } };
  const why =
    requested > max
      ? `at most half the duration (${formatDuration(max)})`
      : `at least the operator's --min-renew-before (${formatDuration(min)})`;
  const adjusted = `renewBefore ${formatDuration(requested)} was moved to ${formatDuration(renewBeforeSeconds)}: it must be ${why}${spec.renewBefore ? '; change spec.renewBefore' : ''}`;
  return { ok: true, lifetime: { durationSeconds, renewBeforeSeconds, adjusted } };
}

/** Jitter never exceeds this, nor a tenth of renewBefore, so renewal always stays well before expiry. */
export const MAX_JITTER_SECONDS = 300;

/**
 * A per-identity offset in [0, min(renewBefore/10, 5 min)), fixed for a UID so that thousands of identities
 * created together do not all renew in the same second, and one identity's schedule does not move between
 * reconciles.
 */
export function jitterSeconds(uid: string, renewBeforeSeconds: number): number {
  const fraction = createHash('sha256').update(uid).digest().readUInt32BE(0) / 2 ** 32;
  return fraction * Math.min(renewBeforeSeconds / 10, MAX_JITTER_SECONDS);
}

/** renewalTime = notAfter - renewBefore - jitter(uid), to the millisecond. */
export function renewalTime(notAfter: Date, renewBeforeSeconds: number, uid: string): Date {
  const offsetMs = (renewBeforeSeconds + jitterSeconds(uid, renewBeforeSeconds)) * 1000;
  return new Date(notAfter.getTime() - Math.round(offsetMs));
}

/** The look-ahead is at most this fraction of renewBefore. */
export const MAX_EARLY_FRACTION_OF_RENEW_BEFORE = 0.5;

/**
 * The earliest time the operator may renew an SVID ahead of its renewalTime, when its issuance rate has room
 * that later would be short: renewBefore/2 before renewalTime, but never in the first half of the SVID's life.
 * So a renewal taken early still leaves the workload its full renewBefore and more, an SVID is never replaced
 * while young (it has served at least half its life, as with the largest renewBefore the CRD allows), and
 * a rate can absorb a bunch of rate × renewBefore/2 renewals more than it carries before they fall due.
 * Never later than renewalTime; equal to it when the SVID is already past its midpoint there (a short
 * remaining window leaves nothing to take early).
 */
export function earliestRenewal(
  renewal: Date,
  notAfter: Date,
  durationSeconds: number,
  renewBeforeSeconds: number,
): Date {
  const lookAheadMs = Math.round(renewBeforeSeconds * 1000 * MAX_EARLY_FRACTION_OF_RENEW_BEFORE);
  // The midpoint from the lifetime asked for, not from notBefore: that is backdated for clock skew.
  const midpoint = notAfter.getTime() - (durationSeconds * 1000) / 2;
  const earliest = Math.max(renewal.getTime() - lookAheadMs, Math.ceil(midpoint));
  return new Date(Math.min(renewal.getTime(), earliest));
}

/**
 * Where a paced re-issue waits in the issuance pacer's queue (its deadline, ms since the epoch): the SVID's
 * renewal time. Renewals are counted late from their renewal time, and the per-identity jitter (up to
 * renewBefore/10) puts the renewal times of SVIDs that expire in the same second up to that much apart, so
 * serving them by notAfter would let a renewal due later go before one already waiting past its time. A CA
 * rotation's re-issues take the same order (earliest expiry first, up to the jitter, for one renewBefore).
 */
export function pacingDeadline(notAfter: Date, renewBeforeSeconds: number, uid: string): number {
  return renewalTime(notAfter, renewBeforeSeconds, uid).getTime();
}
