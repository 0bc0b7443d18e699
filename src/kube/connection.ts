// Where and how requests to the API server go: the pieces the client and the watch stream need.
import type { Dispatcher } from 'undici';

/** What one request needs: the server, the headers that authenticate it, and the (pooled) dispatcher. */
export interface Connection {
  /** e.g. https://10.0.0.1:443 */
  origin: string;
  /** The server URL's path without a trailing slash ('' for most servers). */
  pathPrefix: string;
  /** Authentication headers (e.g. authorization); never logged. */
  headers: Record<string, string>;
  dispatcher: Dispatcher;
}

/**
 * What a connection is for: a request (answered within seconds, on a bounded pool) or a watch (holds its
 * connection for minutes, so it has a pool of its own and never takes a request's connection).
 */
export type ConnectionUse = 'request' | 'watch';

/** Gives the connection for the next request (tokens re-read, connections reused). */
export interface KubeTransport {
  connection(use?: ConnectionUse): Promise<Connection>;
  /** Closes pooled connections. */
  close(): Promise<void>;
  /** Where requests go and how they authenticate, for logs (no secrets). */
  readonly description: string;
}
