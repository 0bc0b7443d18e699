// How long to wait before re-opening the Workload API stream, and whether to. The SPIFFE Workload Endpoint
// and Workload API specs: retry with backoff on UNAVAILABLE (agent not there yet or restarting) and
// PERMISSION_DENIED (the workload is not, or not yet, registered); INVALID_ARGUMENT (the request lacked the
// security header) and UNIMPLEMENTED (not a Workload API) will not change by retrying, so stop and report.
import { GrpcCode } from './status.ts';

export interface BackoffPolicy {
  /** First delay, ms. Default 1000 (go-spiffe's). */
  initialMs: number;
  /** Longest delay, ms. Default 30 000 (go-spiffe's). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000 };

/** Exponential backoff: initial × 2^attempt, capped at max. `attempt` counts failures since the last message. */
export function backoffDelay(policy: BackoffPolicy, attempt: number): number {
  const exp = Math.min(attempt, 30);
  return Math.min(policy.maxMs, policy.initialMs * 2 ** exp);
}

/** Whether a failed stream (by gRPC code; undefined for a transport failure) is re-opened. */
export function shouldRetry(code: number | undefined): boolean {
  return code !== GrpcCode.INVALID_ARGUMENT && code !== GrpcCode.UNIMPLEMENTED;
}
