// Failures of Kubernetes API requests, as one typed error: the HTTP status code, and the reason and
// message of the API's Status body when it sent one (https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind).
// Callers branch on `code` (404, 409, 410, ...) or `reason` (NotFound, AlreadyExists, Conflict, ...).

/** The API server answered a request with a non-2xx status. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  /** The HTTP status code (e.g. 404). */
  readonly code: number;
  /** The Status body's machine-readable reason (e.g. NotFound, AlreadyExists, Conflict), or ''. */
  readonly reason: string;
  /** The Status body's message, or '' when the body is not a Status. */
  readonly statusMessage: string;
  /** The body as received (at most BODY_LIMIT characters). */
  readonly body: string;
  readonly method: string;
  readonly path: string;

  constructor(method: string, path: string, code: number, body: string) {
    const status = statusOf(body);
    const detail = status?.message || oneLine(body);
    super(
      `${method} ${path}: the API server answered ${code}${status?.reason ? ` ${status.reason}` : ''}${detail ? `: ${detail}` : ''}`,
    );
    this.code = code;
    this.reason = status?.reason ?? '';
    this.statusMessage = status?.message ?? '';
    this.body = body.slice(0, BODY_LIMIT);
    this.method = method;
    this.path = path;
  }
}

const BODY_LIMIT = 4000;
const DETAIL_LIMIT = 500;

/** The longest wait a Status's details.retryAfterSeconds is believed for (a hostile or broken value is cut). */
export const MAX_RETRY_AFTER_SECONDS = 60;

/**
 * The reason and message of a Status body (one line each), and its details.retryAfterSeconds when it is a
 * whole number of seconds from 1 to MAX_RETRY_AFTER_SECONDS (larger values are cut to it, anything else is
 * 0); undefined for any other body.
 */
export function statusOf(
  body: string,
): { reason: string; message: string; retryAfterSeconds: number } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object' || (parsed as { kind?: unknown }).kind !== 'Status')
    return undefined;
  const s = parsed as { reason?: unknown; message?: unknown; details?: { retryAfterSeconds?: unknown } };
  const retry = s.details && typeof s.details === 'object' ? s.details.retryAfterSeconds : undefined;
  return {
    reason: typeof s.reason === 'string' ? oneLine(s.reason) : '',
    message: typeof s.message === 'string' ? oneLine(s.message) : '',
    retryAfterSeconds:
      typeof retry === 'number' && Number.isInteger(retry) && retry >= 1
        ? Math.min(retry, MAX_RETRY_AFTER_SECONDS)
        : 0,
  };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, DETAIL_LIMIT);
}

/** The API server answered `code` (e.g. isStatus(err, 404)). */
export function isStatus(err: unknown, ...codes: number[]): err is KubeApiError {
  return err instanceof KubeApiError && codes.includes(err.code);
}

export const isNotFound = (err: unknown): err is KubeApiError => isStatus(err, 404);
export const isConflict = (err: unknown): err is KubeApiError => isStatus(err, 409);
export const isGone = (err: unknown): err is KubeApiError => isStatus(err, 410);
/** Worth retrying as is: throttled (429) or a server-side failure (5xx). */
export const isRetryable = (err: unknown): err is KubeApiError =>
  err instanceof KubeApiError && (err.code === 429 || err.code >= 500);
