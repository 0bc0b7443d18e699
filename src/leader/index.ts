export {
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  LeaseElector,
  type ElectionLogger,
  type LeaderCallbacks,
  type LeaseElectorOptions,
} from './lease-election.ts';
