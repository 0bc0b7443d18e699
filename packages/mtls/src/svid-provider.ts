// What the transport helpers (gRPC, HTTP/2, TLS) need from a source: the current SVID and its updates.
// The Secret-volume source and the Workload API source both provide it.
import type { Svid } from './source.ts';

export interface SvidProvider {
  current(): Svid;
  on(event: 'update', listener: (svid: Svid) => void): unknown;
  off(event: 'update', listener: (svid: Svid) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  emit(event: 'error', err: Error): boolean;
  listenerCount(event: 'error'): number;
}
