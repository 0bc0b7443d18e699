// The maximum age of a connection, one rule for every server and client of this library: what the caller
// set, or a quarter of the lifetime of the current SVID, so that a rotation (ours or the peer's) or a
// retired root reaches every connection well before the certificate it was made with expires.
import type { X509Source, X509Svid } from './source/x509-source.ts';

/** How long an SVID is valid, in milliseconds. */
export const lifetimeMs = (svid: X509Svid): number => svid.notAfter.getTime() - svid.notBefore.getTime();

/** The longest delay setTimeout honours; a longer one (or Infinity) fires after 1 ms instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Checks a `maxConnectionAgeMs` option: undefined (the default rule) or a positive, finite number of
 * milliseconds. Anything else throws, saying what was wrong, when the server or client is made.
 */
export function checkMaxConnectionAge(
  value: unknown,
  what: string,
  option: 'maxConnectionAgeMs' | 'maxConnectionAgeGraceMs' = 'maxConnectionAgeMs',
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    const shown = typeof value === 'number' ? String(value) : typeof value;
    throw new TypeError(
      `${what}: ${option} must be a positive, finite number of milliseconds (got ${shown}); ` +
        (option === 'maxConnectionAgeMs'
          ? 'leave it out for the default, a quarter of the SVID lifetime'
          : 'leave it out for the default, the maximum connection age'),
    );
  }
  return value;
}

/** The maximum age of a connection made now: `configured`, or a quarter of the current SVID's lifetime. */
export function maxConnectionAgeMs(source: X509Source, configured: number | undefined): number {
  return configured ?? lifetimeMs(source.current()) / 4;
}

/** A delay for setTimeout: never negative, and never past what it honours (a longer one would fire at once). */
export const timerDelay = (ms: number): number => Math.min(Math.max(ms, 0), MAX_TIMER_MS);
