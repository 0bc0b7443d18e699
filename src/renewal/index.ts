export { DurationError, formatDuration, parseDuration } from './duration.ts';
export {
  DEFAULT_DURATION_SECONDS,
  MAX_JITTER_SECONDS,
  jitterSeconds,
  renewalTime,
  resolveLifetime,
  type DurationBounds,
  type Lifetime,
} from './schedule.ts';
