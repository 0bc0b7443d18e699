// gRPC status codes and the status carried in HTTP/2 trailers (grpc-status, grpc-message).
// https://github.com/grpc/grpc/blob/master/doc/statuscodes.md

export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const NAMES = Object.fromEntries(Object.entries(GrpcCode).map(([k, v]) => [v, k])) as Record<number, string>;

export function grpcCodeName(code: number): string {
  return NAMES[code] ?? `code ${code}`;
}

/**
 * The status of a finished call from its trailers (or from the headers of a trailers-only response).
 * A missing or non-numeric grpc-status is UNKNOWN, as the gRPC spec says; grpc-message is percent-decoded.
 */
export function statusFromTrailers(trailers: Record<string, string | string[] | undefined>): {
  code: number;
  message: string;
} {
  const raw = first(trailers['grpc-status']);
  const code = raw !== undefined && /^\d{1,2}$/.test(raw) ? Number(raw) : GrpcCode.UNKNOWN;
  return { code, message: decodeGrpcMessage(first(trailers['grpc-message']) ?? '') };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** grpc-message is percent-encoded UTF-8; an invalid escape is kept as it is, never an exception. */
export function decodeGrpcMessage(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
