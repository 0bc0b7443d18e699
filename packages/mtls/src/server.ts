// Inbound mTLS: HTTPS, HTTP/2 and plain TLS servers that require a client X.509-SVID, verify it against the
// bundle of the trust domain it claims, authorize it by an explicit rule on every request, bound the age
// of connections, and take a rotated SVID without dropping a connection.
import { constants } from 'node:crypto';
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import tls from 'node:tls';
import { toAuthorizer, type Authorizer } from './authorize.ts';
import { checkMaxConnectionAge, maxConnectionAgeMs, timerDelay } from './connection-age.ts';
import { notify, type Observer } from './observe.ts';
import { socketEstablishedAt, socketVerdict } from './peer.ts';
import { allRoots, type X509Source, type X509Svid } from './source/x509-source.ts';
import { toPem } from './pem.ts';

/** TLS settings beyond the credentials; kept and re-applied on every rotation. */
export type ExtraTlsOptions = Omit<
  tls.TlsOptions,
  'cert' | 'key' | 'ca' | 'requestCert' | 'rejectUnauthorized' | 'secureContext' | 'ticketKeys'
>;

export interface ServerOptions {
  /** Which client SVIDs may call: required. authorizeId(...), authorizeMemberOf(td), or authorizeAny(). */
  authorize: Authorizer | readonly string[];
  /**
   * Connections older than this are closed (gracefully: HTTP/1 answers with `connection: close`, HTTP/2
   * sends GOAWAY), so a rotation or a retired root reaches every peer. Default: a quarter of the lifetime
   * of the server's SVID when the connection was made.
   */
  maxConnectionAgeMs?: number;
  /** Handshake failures, denials and rotations. */
  observe?: Observer;
  tls?: ExtraTlsOptions;
  /** The clock, for tests. */
  now?: () => Date;
}

/** PEM of an SVID's chain and key, made only to build a SecureContext and not kept. */
export function credentialPem(svid: X509Svid): { cert: string; key: string } {
  return {
    cert: svid.certificates.map((c) => toPem('CERTIFICATE', c.raw)).join(''),
    key: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/**
 * The complete option set for a server's secure context. setSecureContext replaces the whole context, so
 * anything left out (the client CA above all) would silently be lost after the first rotation. Session
 * tickets are off, so no session is resumed without a full, checked handshake.
 */
export function serverTlsOptions(source: X509Source, extra: ExtraTlsOptions = {}): tls.TlsOptions {
  return {
    minVersion: 'TLSv1.2',
    ...extra,
    ...credentialPem(source.current()),
    ca: allRoots(source).map((c) => toPem('CERTIFICATE', c.raw)),
    secureOptions:
      (extra.secureOptions ?? 0) | constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_RENEGOTIATION,
  };
}

interface Guard {
  /** The verdict for a request on this socket: the peer's ID, or the HTTP status and message to answer. */
  check(
    socket: tls.TLSSocket,
  ): { ok: true; spiffeId: string; retire: boolean } | { ok: false; status: 401 | 403; message: string };
}

/**
 * Puts the checks in front of the server's own connection handling: a peer that fails them is disconnected
 * before HTTP sees it; renegotiation is disabled; connections are closed after their maximum age.
 */
function guard(server: tls.Server, source: X509Source, opts: ServerOptions, what: string): Guard {
  const authz = toAuthorizer(opts.authorize, what);
  const now = opts.now ?? (() => new Date());
  const configuredAge = checkMaxConnectionAge(opts.maxConnectionAgeMs, what);
  const maxAge = () => maxConnectionAgeMs(source, configuredAge);
  const ages = new WeakMap<tls.TLSSocket, number>();
  const check: Guard['check'] = (socket) => {
    const verdict = socketVerdict(socket, source, now());
    if (!verdict.ok) {
      notify(opts.observe, {
        type: 'handshake-failed',
        reason: verdict.reason,
        message: verdict.message,
        remoteAddress: socket.remoteAddress,
      });
      return {
        ok: false,
        status: 401,
        message: `${verdict.message}: present an X.509-SVID this service trusts`,
      };
    }
    if (!authz(verdict.peer)) {
      notify(opts.observe, {
        type: 'denied',
        peerId: verdict.peer.id,
        rule: authz.description,
        remoteAddress: socket.remoteAddress,
      });
      return { ok: false, status: 403, message: `${verdict.peer.id} is not allowed to call this service` };
    }
    const since = socketEstablishedAt(socket) ?? now().getTime();
    return {
      ok: true,
      spiffeId: verdict.peer.id,
      retire: now().getTime() - since >= (ages.get(socket) ?? maxAge()),
    };
  };
  const original = server.listeners('secureConnection') as ((socket: tls.TLSSocket) => void)[];
  server.removeAllListeners('secureConnection');
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    socket.disableRenegotiation();
    // Authentication here (an unauthenticated peer never reaches HTTP); authorization on every request,
    // so that an HTTP client hears 403 and why.
    const verdict = socketVerdict(socket, source, now());
    if (!verdict.ok) {
      notify(opts.observe, {
        type: 'handshake-failed',
        reason: verdict.reason,
        message: verdict.message,
        remoteAddress: socket.remoteAddress,
      });
      socket.destroy();
      return;
    }
    const age = maxAge();
    ages.set(socket, age);
    // The connection ends at its maximum age; HTTP answers `connection: close` from then on, and after a
    // grace period anything still open is closed.
    const timer = setTimeout(() => {
      server.emit('svid:retire', socket);
      const grace = setTimeout(() => socket.destroy(), Math.min(30_000, age)).unref();
      socket.once('close', () => clearTimeout(grace));
    }, timerDelay(age)).unref();
    // Nothing on the connection outlives the client certificate it was authenticated with: a response or
    // an HTTP/2 stream still open when it expires is cut (requests made after it are refused with 401).
    const expiry = setTimeout(
      () => socket.destroy(),
      timerDelay(verdict.notAfter.getTime() - now().getTime()),
    ).unref();
    socket.once('close', () => {
      clearTimeout(timer);
      clearTimeout(expiry);
    });
    for (const listener of original) listener.call(server, socket);
  });
  server.on('tlsClientError', (err, socket) =>
    notify(opts.observe, {
      type: 'handshake-failed',
      reason: 'tls',
      message: err.message,
      remoteAddress: socket.remoteAddress,
    }),
  );
  const onUpdate = (svid: X509Svid) => {
    // The source validated the set; a failure here (e.g. a cipher option the new key cannot use) keeps the
    // old context serving.
    try {
      server.setSecureContext(serverTlsOptions(source, opts.tls));
      notify(opts.observe, {
        type: 'rotated',
        spiffeId: svid.spiffeId,
        serialNumber: svid.serialNumber,
        notAfter: svid.notAfter,
      });
    } catch (err) {
      notify(opts.observe, { type: 'rotation-failed', message: (err as Error).message });
    }
  };
  source.on('update', onUpdate);
  server.once('close', () => source.off('update', onUpdate));
  return { check };
}

/** The server's TLS options with client certificates requested; the guard decides about them. */
const baseOptions = (source: X509Source, opts: ServerOptions) => ({
  ...serverTlsOptions(source, opts.tls),
  requestCert: true,
  // OpenSSL verifies against every root; the guard refuses what failed (with the reason, for `observe`) and
  // adds the per-trust-domain check. A refused peer never reaches the request listener.
  rejectUnauthorized: false,
});

export interface SpiffeRequest extends IncomingMessage {
  spiffeId?: string;
}

function answer(res: ServerResponse | http2.Http2ServerResponse, status: number, error: string): void {
  const body = JSON.stringify({ error });
  (res as ServerResponse)
    .writeHead(status, { 'content-type': 'application/json', connection: 'close' })
    .end(body);
}

const socketOf = (req: IncomingMessage | http2.Http2ServerRequest) =>
  ('stream' in req ? req.stream.session?.socket : req.socket) as tls.TLSSocket | undefined;

function serve<
  Req extends IncomingMessage | http2.Http2ServerRequest,
  Res extends ServerResponse | http2.Http2ServerResponse,
>(g: Guard, listener: (req: Req & { spiffeId?: string }, res: Res) => void): (req: Req, res: Res) => void {
  return (req, res) => {
    const socket = socketOf(req);
    const verdict = socket
      ? g.check(socket)
      : ({ ok: false, status: 401, message: 'no TLS connection' } as const);
    if (!verdict.ok) {
      answer(res, verdict.status, verdict.message);
      return;
    }
    if (verdict.retire && !('stream' in req)) (res as ServerResponse).setHeader('connection', 'close');
    (req as Req & { spiffeId?: string }).spiffeId = verdict.spiffeId;
    listener(req as Req & { spiffeId?: string }, res);
  };
}

/** An HTTPS server: 401 without a valid client SVID, 403 when `authorize` refuses it, `req.spiffeId` otherwise. */
export function createHttpsServer(
  source: X509Source,
  opts: ServerOptions,
  listener: (req: SpiffeRequest, res: ServerResponse) => void,
): https.Server {
  const server = https.createServer(baseOptions(source, opts), (req, res) => handle(req, res));
  const handle = serve(guard(server, source, opts, 'createHttpsServer'), listener);
  // A connection past its age answers `connection: close` on its next response (serve() above). An idle one is
  // not closed at that moment: the client may be sending a request on it right then, and a close racing it is
  // the "other side closed" error a client cannot tell from a crash (the real-node e2e saw 1 in 500). Idle
  // connections end by the server's keep-alive timeout, which clients know from the Keep-Alive header and
  // stay under; the guard's grace period ends whatever is left.
  return server;
}

/** An HTTP/2 server (HTTP/1.1 too) with the same checks; a connection past its age gets a GOAWAY. */
export function createHttp2Server(
  source: X509Source,
  opts: ServerOptions,
  listener: (req: http2.Http2ServerRequest & { spiffeId?: string }, res: http2.Http2ServerResponse) => void,
): http2.Http2SecureServer {
  const server = http2.createSecureServer({ ...baseOptions(source, opts), allowHTTP1: true }, (req, res) =>
    handle(req, res),
  );
  const handle = serve(guard(server as unknown as tls.Server, source, opts, 'createHttp2Server'), listener);
  // http2 exposes its sessions' sockets only through a proxy, so the age bound is kept per session.
  server.on('session', (session) => {
    const age = maxConnectionAgeMs(source, opts.maxConnectionAgeMs);
    const timer = setTimeout(() => session.close(), timerDelay(age)).unref();
    session.once('close', () => clearTimeout(timer));
  });
  return server;
}

/** A TLS server; a peer without an allowed SVID is disconnected before `listener` sees it. */
export function createTlsServer(
  source: X509Source,
  opts: ServerOptions,
  listener: (socket: tls.TLSSocket, spiffeId: string) => void,
): tls.Server {
  const server = tls.createServer(baseOptions(source, opts), (socket) => {
    const verdict = g.check(socket);
    if (!verdict.ok) {
      socket.destroy();
      return;
    }
    listener(socket, verdict.spiffeId);
  });
  const g = guard(server, source, opts, 'createTlsServer');
  server.on('svid:retire', (socket: tls.TLSSocket) => socket.end());
  return server;
}
