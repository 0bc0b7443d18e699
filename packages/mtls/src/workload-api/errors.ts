// The one error type the Workload API client raises for what the agent sent or did. `reason` is a stable
// machine-readable word; `message` says what was wrong in words a user can act on.

export type WorkloadApiErrorReason =
  /** The bytes on the wire are not a valid message of the expected type (protobuf, gRPC framing, DER). */
  | 'malformed'
  /** A message or frame is larger than the configured limit. */
  | 'too-large'
  /** The endpoint address (SPIFFE_ENDPOINT_SOCKET) is missing or invalid. */
  | 'address'
  /** The agent answered with a non-OK gRPC status (see `grpcCode`). */
  | 'status'
  /** The connection failed or closed before a status arrived. */
  | 'transport'
  /** A response arrived but holds no usable SVID (none at all, none with the hint, or invalid ones). */
  | 'no-svid';

export class WorkloadApiError extends Error {
  readonly reason: WorkloadApiErrorReason;
  /** The gRPC status code when reason is 'status'. */
  readonly grpcCode: number | undefined;

  constructor(reason: WorkloadApiErrorReason, message: string, grpcCode?: number) {
    super(message);
    this.name = 'WorkloadApiError';
    this.reason = reason;
    this.grpcCode = grpcCode;
  }
}
