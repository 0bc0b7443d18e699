export { DurationError, formatDuration, parseDuration } from './duration.ts';
export {
  DEFAULT_DURATION_SECONDS,
  MAX_EARLY_FRACTION_OF_RENEW_BEFORE,
  earliestRenewal,
  MAX_JITTER_SECONDS,
  jitterSeconds,
  pacingDeadline,
  renewalTime,
  resolveLifetime,
  type DurationBounds,
  type Lifetime,
} from './schedule.ts';
