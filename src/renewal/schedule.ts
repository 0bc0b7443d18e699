import { createHash } from 'node:crypto';
import { formatDuration, parseDuration } from './duration.ts';

export const DEFAULT_DURATION_SECONDS = 3600;

export interface DurationBounds {
  minSeconds: number;
  maxSeconds: number;
}

export interface Lifetime {
  durationSeconds: number;
  renewBeforeSeconds: number;
}

/**
 * spec.duration and spec.renewBefore with defaults applied (1h, and a third of the duration) and checked
 * against the operator's bounds. Returns the problem as a message for the status instead of throwing.
 */
export function resolveLifetime(
  spec: { duration?: string; renewBefore?: string },
  bounds: DurationBounds,
): { ok: true; lifetime: Lifetime } | { ok: false; message: string } {
  let durationSeconds: number;
  let renewBeforeSeconds: number;
  try {
    durationSeconds = spec.duration ? parseDuration(spec.duration) : DEFAULT_DURATION_SECONDS;
    renewBeforeSeconds = spec.renewBefore ? parseDuration(spec.renewBefore) : durationSeconds / 3;
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  if (durationSeconds < bounds.minSeconds || durationSeconds > bounds.maxSeconds) {
    return {
      ok: false,
      message: `duration ${formatDuration(durationSeconds)} is outside the operator's bounds [${formatDuration(bounds.minSeconds)}, ${formatDuration(bounds.maxSeconds)}]: choose a duration within them`,
    };
  }
  if (!(renewBeforeSeconds > 0)) return { ok: false, message: 'renewBefore must be positive' };
  if (renewBeforeSeconds >= durationSeconds) {
    return {
      ok: false,
      message: `renewBefore ${formatDuration(renewBeforeSeconds)} must be shorter than duration ${formatDuration(durationSeconds)}`,
    };
  }
  return { ok: true, lifetime: { durationSeconds, renewBeforeSeconds } };
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
