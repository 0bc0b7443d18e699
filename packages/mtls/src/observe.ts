// Observability without a metrics or logging dependency: servers and clients call `observe` with these
// events; the README shows wiring them to prom-client and to a logger.
import type { PeerFailure } from './peer.ts';

export type MtlsEvent =
  /** A peer was refused before authorization: no certificate, unknown CA, expired, wrong trust domain, ... */
  | { type: 'handshake-failed'; reason: PeerFailure | 'tls'; message: string; remoteAddress?: string }
  /** A verified peer was refused by the authorization rule. */
  | { type: 'denied'; peerId: string; rule: string; remoteAddress?: string }
  /** A rotated SVID could not be installed (the previous one keeps serving). */
  | { type: 'rotation-failed'; message: string }
  /** A rotated SVID or bundle set is in use. */
  | { type: 'rotated'; spiffeId: string; serialNumber: string; notAfter: Date };

export type Observer = (event: MtlsEvent) => void;

/** Calls the observer; an observer that throws never breaks a connection or a rotation. */
export function notify(observer: Observer | undefined, event: MtlsEvent): void {
  if (!observer) return;
  try {
    observer(event);
  } catch {
    // The observer's own failure is not the connection's.
  }
}
