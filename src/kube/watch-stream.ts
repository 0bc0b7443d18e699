// One watch request, made directly through the transport's (pooled) dispatcher instead of client-node's
// Watch. client-node 2.0.1's Watch aborts a watch after 30 s without a byte (its `requestTimeoutMs`
// inactivity timer, see node_modules/@kubernetes/client-node/dist/watch.js), and a watch with nothing to
// report sends nothing for that long: every quiet watch ended in a client-side abort, reported as a
// TimeoutError. It also swallows any exception thrown by the event callback ("ignore parse errors").
//
// Here the watch lives as long as the API server keeps it (the caller passes `timeoutSeconds`, like
// client-go's reflector), the server's clean close is reported as such, and the only client-side timer
// is a dead-connection guard: no byte for longer than the server's own timeout plus a margin can only
// mean a connection that silently died.
import type { Dispatcher } from 'undici';
import type { Connection } from './connection.ts';

/** How a watch request ended. */
export type WatchEnd =
  /** The API server closed the stream (its timeoutSeconds ran out): the watch was alive to the end. */
  | { kind: 'closed' }
  /** The server refused the request with this HTTP status (e.g. 410 Gone, 403, 500). */
  | { kind: 'status'; code: number; body: string }
  /** The connection failed, the dead-connection guard fired, or the caller aborted. */
  | { kind: 'error'; error: Error; aborted: boolean };

export interface WatchRequest {
  path: string;
  query: Record<string, string | number | boolean | undefined>;
  /** Abort to end the watch. */
  signal: AbortSignal;
  /** No byte for this long ends the watch as an error: set it above the server-side timeoutSeconds. */
  deadConnectionMs: number;
  /** The API server accepted the watch (HTTP 200): the stream is open. */
  onOpen(): void;
  /** One event; a throw here is the caller's to handle (it ends the watch as an error otherwise). */
  onEvent(type: string, object: unknown): void;
}

export type WatchOpener = (request: WatchRequest) => Promise<WatchEnd>;

/** Runs one watch request on `conn` until the server closes it, it fails, or the caller aborts. */
export async function streamWatch(conn: Connection, req: WatchRequest): Promise<WatchEnd> {
  const query = new URLSearchParams({ watch: 'true' });
  for (const [k, v] of Object.entries(req.query)) if (v !== undefined) query.set(k, String(v));
  let res: Dispatcher.ResponseData;
  try {
    res = await conn.dispatcher.request({
      origin: conn.origin,
      path: `${conn.pathPrefix}${req.path}?${query.toString()}`,
      method: 'GET',
      headers: { ...conn.headers, accept: 'application/json' },
      signal: req.signal,
      headersTimeout: req.deadConnectionMs,
      bodyTimeout: req.deadConnectionMs,
    });
  } catch (err) {
    return { kind: 'error', error: asError(err), aborted: req.signal.aborted };
  }
  if (res.statusCode !== 200) {
    const body = await res.body.text().catch(() => '');
    return { kind: 'status', code: res.statusCode, body: body.slice(0, 1000) };
  }
  req.onOpen();
  let buffered = '';
  try {
    res.body.setEncoding('utf8');
    for await (const chunk of res.body as AsyncIterable<string>) {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        const event = JSON.parse(line) as { type?: string; object?: unknown };
        req.onEvent(event.type ?? '', event.object);
      }
    }
  } catch (err) {
    res.body.destroy();
    return { kind: 'error', error: asError(err), aborted: req.signal.aborted };
  }
  return { kind: 'closed' };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
