// gRPC (@grpc/grpc-js, an optional peer dependency: only this module imports it) server and channel
// credentials on any SVID source, rotating without a restart through grpc-js's experimental
// CertificateProvider, with SPIFFE-ID authorization on both sides.
//
// grpc-js pitfalls this module is shaped by (grpc-js 1.14 source, server-credentials.ts and server.ts):
//  - createCertificateProviderServerCredentials(caProvider, identityProvider, …) passes its arguments to a
//    constructor that takes (identityProvider, caProvider, …): the names do not match the order used. One
//    provider serves both roles here, so the order cannot matter.
//  - A null update, or options setSecureContext refuses, make the server drop every new connection until
//    the next good update. Only pairs that the source validated and that build a SecureContext here are
//    pushed; nothing null ever is.
//  - The server reads the credentials before it registers its watcher, so an update delivered
//    synchronously on registration is never applied (and every connection is dropped): the first update
//    goes out on the next tick, after registration.
import * as grpc from '@grpc/grpc-js';
import type http2 from 'node:http2';
import tls, { TLSSocket, type PeerCertificate } from 'node:tls';
import { toAuthorizer, type Authorizer } from './authorize.ts';
import { identityCheck, serverAuthorizer, type ClientOptions } from './client.ts';
import { checkMaxConnectionAge, maxConnectionAgeMs, timerDelay } from './connection-age.ts';
import { notify, type Observer } from './observe.ts';
import { socketVerdict, verifyDetailedPeerCertificate, type PeerVerdict } from './peer.ts';
import { toPem } from './pem.ts';
import { credentialPem } from './server.ts';
import { allRoots, type X509Source, type X509Svid } from './source/x509-source.ts';
import type { PeerId } from './x509-svid.ts';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

interface Pushed {
  ca: grpc.experimental.CaCertificateUpdate;
  identity: grpc.experimental.IdentityCertificateUpdate;
  rootsKey: string;
  serial: string;
}

/**
 * A grpc-js CertificateProvider fed by an X509Source: the CA role gets the roots of every trust domain of
 * the source (the per-trust-domain check follows in the interceptor or checkServerIdentity), the identity
 * role the SVID's key and chain. The source has validated the SVID; a pair is pushed only if it also
 * builds a SecureContext here, otherwise the previous credentials stay and the source's 'error' listeners
 * hear why. The key's PEM is made here, only to hand it to grpc-js, and is never logged.
 */
export class SvidCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly source: X509Source;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private latest: Pushed;
  private readonly onUpdate: (svid: X509Svid) => void;
  private readonly observe: Observer | undefined;

  constructor(source: X509Source, observe?: Observer) {
    this.source = source;
    this.observe = observe;
    this.latest = SvidCertificateProvider.prepare(source, source.current());
    this.onUpdate = (svid) => {
      let next: Pushed;
      try {
        next = SvidCertificateProvider.prepare(source, svid);
      } catch (err) {
        const message = `gRPC credentials keep SVID ${this.latest.serial}: SVID ${svid.serialNumber} was refused: ${(err as Error).message}`;
        notify(this.observe, { type: 'rotation-failed', message });
        return;
      }
      const caChanged = next.rootsKey !== this.latest.rootsKey;
      this.latest = next;
      // The CA first, so a new identity never meets a store that lacks its roots; both in one tick.
      if (caChanged) for (const l of this.caListeners) l(next.ca);
      for (const l of this.identityListeners) l(next.identity);
      notify(this.observe, {
        type: 'rotated',
        spiffeId: svid.spiffeId,
        serialNumber: svid.serialNumber,
        notAfter: svid.notAfter,
      });
    };
    source.on('update', this.onUpdate);
  }

  private static prepare(source: X509Source, svid: X509Svid): Pushed {
    const pem = credentialPem(svid);
    const roots = allRoots(source);
    const key = Buffer.from(pem.key);
    const certificate = Buffer.from(pem.cert);
    const caCertificate = Buffer.from(roots.map((c) => toPem('CERTIFICATE', c.raw)).join(''));
    const leaf = svid.certificates[0];
    if (!leaf?.checkPrivateKey(svid.privateKey))
      throw new Error('the private key does not match the certificate');
    // Exactly what grpc-js will do with it; if this throws, grpc-js would drop connections instead.
    tls.createSecureContext({ cert: certificate, key, ca: caCertificate });
    return {
      ca: { caCertificate },
      identity: { certificate, privateKey: key },
      rootsKey: roots.map((c) => c.fingerprint256).join(','),
      serial: svid.serialNumber,
    };
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener(this.latest.ca);
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener(this.latest.identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /** Stops following the source (credentials already handed out keep their last pair). */
  close(): void {
    this.source.off('update', this.onUpdate);
  }
}

type AuthContextCall = { getAuthContext(): { sslPeerCertificate?: PeerCertificate } };

/**
 * The verified identity of a server call's peer: an X.509-SVID of the bundle of the trust domain it claims
 * and in date, or undefined (no client certificate, or one that fails those checks).
 */
export function callerPeerId(
  call: AuthContextCall,
  source: X509Source,
  now = new Date(),
): PeerId | undefined {
  const verdict = callVerdict(call, source, now);
  return verdict.ok ? verdict.peer : undefined;
}

/** The SPIFFE ID of a server call's verified peer (see `callerPeerId`), for handlers. */
export function callerSpiffeId(
  call: AuthContextCall,
  source: X509Source,
  now = new Date(),
): string | undefined {
  return callerPeerId(call, source, now)?.id;
}

export interface GrpcServerOptions {
  /**
   * Required: which client SVIDs may call: authorizeId(...), authorizeMemberOf(td), authorizeUnder(id), or,
   * to allow every SVID of the trust bundles, authorizeAny().
   */
  authorize: Authorizer | readonly string[];
  /**
   * Connections (HTTP/2 sessions) older than this are closed gracefully (GOAWAY: calls in flight finish, the
   * client's next call opens a new connection with its current SVID). Counted from the first call the
   * server sees on the connection. Default: a quarter of the lifetime of the server's SVID at that call.
   */
  maxConnectionAgeMs?: number;
  /**
   * How long calls still open on a retired connection may go on before they are cancelled (the session is
   * destroyed; grpc-js clients see UNAVAILABLE and a new call reconnects). Default: the connection's
   * maximum age, so a connection lives at most twice its age after its first call. Whatever this is, calls
   * on a connection whose client certificate has expired are cancelled at that expiry.
   */
  maxConnectionAgeGraceMs?: number;
  /** Handshake failures, denials and rotations. */
  observe?: Observer;
  /** The clock, for tests. */
  now?: () => Date;
}

/**
 * The HTTP/2 session of a server call, where grpc-js has it: its base call holds the HTTP/2 stream; the call
 * a handler gets wraps the intercepting calls (`call`, then `nextCall`) down to it (grpc-js 1.10 to 1.14).
 * Undefined where that shape is not found.
 */
function sessionOf(call: unknown): http2.ServerHttp2Session | undefined {
  type Shape = { stream?: { session?: unknown }; call?: unknown; nextCall?: unknown };
  let c = call as Shape | undefined;
  for (let depth = 0; c && typeof c === 'object' && depth < 16; depth++) {
    const session = c.stream?.session as Partial<http2.ServerHttp2Session> | undefined;
    // node:http2 does not export its session class: recognised by what is used of it.
    if (typeof session?.close === 'function' && typeof session.once === 'function' && 'socket' in session)
      return session as http2.ServerHttp2Session;
    c = (c.call ?? c.nextCall) as Shape | undefined;
  }
  return undefined;
}

/** The TLS socket under a server session (Node hands out a proxy of it; it passes instanceof). */
function tlsSocketOf(session: http2.Http2Session | undefined): TLSSocket | undefined {
  const socket: unknown = session?.socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

/**
 * The verdict on a call's peer. With the socket it is the HTTPS servers' per-connection verdict (taken once
 * per connection, re-checked when the certificate expires or its trust domain's bundle changes, and with
 * the intermediates the peer sent); otherwise it is taken from the call's peer certificate.
 */
function callVerdict(
  call: AuthContextCall,
  source: X509Source,
  now: Date,
  socket = tlsSocketOf(sessionOf(call)),
): PeerVerdict {
  if (socket) return socketVerdict(socket, source, now);
  return verifyDetailedPeerCertificate(call.getAuthContext().sslPeerCertificate, source, now);
}

/**
 * Graceful retirement of server sessions. grpc-js's channel keeps one connection for as long as it works and
 * takes a rotated client SVID only on a new one, so the server has to end old connections: `session.close()`
 * sends GOAWAY, lets the streams already open finish, and refuses new ones; grpc-js's client then goes idle
 * and opens a new connection (with its current SVID) for its next call; a call that crossed the GOAWAY is
 * refused with REFUSED_STREAM, which grpc-js retries transparently on the new connection.
 *
 * Two triggers, because the credentials cannot set grpc-js's own `grpc.max_connection_age_ms` (a Server
 * constructor option) and only see a session through its calls:
 *  - a call that finds its session past its age proceeds, and the session is closed with it in flight: this
 *    follows the injected clock, so it is what tests drive, and covers busy connections exactly;
 *  - a timer per session, started at the first call seen on it, closes it at its age even when no call comes
 *    (an idle channel would otherwise keep the connection, and its next call, perhaps after the client's
 *    certificate expired, would be refused once).
 * A session whose peer fails the checks (certificate expired, its root left the bundle, …) is closed too:
 * the call is refused, and the client's next call reconnects instead of being refused forever.
 *
 * GOAWAY lets open streams finish, and a stream may never finish (a server stream, a bidirectional one):
 * calls still open `grace` ms after retirement are cancelled by destroying the session, and so are calls
 * still open on a session when its client certificate expires (a timer at the notAfter of the certificate
 * the first call presented), so no call outlives the certificate it was authenticated with.
 */
function sessionRetirement(
  source: X509Source,
  configuredAge: number | undefined,
  configuredGrace: number | undefined,
  now: () => Date,
) {
  const born = new WeakMap<http2.Http2Session, { at: number; maxAge: number; retired: boolean }>();
  const timers = (session: http2.Http2Session, ...list: NodeJS.Timeout[]) => {
    for (const t of list) t.unref();
    session.once('close', () => list.forEach((t) => clearTimeout(t)));
  };
  const cancel = (session: http2.Http2Session) => {
    if (!session.destroyed) session.destroy();
  };
  const stateOf = (session: http2.Http2Session) => {
    let state = born.get(session);
    if (!state) {
      state = { at: now().getTime(), maxAge: maxConnectionAgeMs(source, configuredAge), retired: false };
      born.set(session, state);
      timers(
        session,
        setTimeout(() => retire(session), timerDelay(state.maxAge)),
      );
    }
    return state;
  };
  const retire = (session: http2.Http2Session) => {
    if (session.closed || session.destroyed) return;
    const state = stateOf(session);
    if (state.retired) return;
    state.retired = true;
    session.close();
    timers(
      session,
      setTimeout(() => cancel(session), timerDelay(configuredGrace ?? state.maxAge)),
    );
  };
  return {
    retire,
    /**
     * Whether `session` is past its maximum age; the first call seen on it starts its clock and timers
     * (its age, and the expiry of the client certificate it presented).
     */
    pastAge(session: http2.Http2Session, peerNotAfter: Date): boolean {
      const fresh = !born.has(session);
      const state = stateOf(session);
      if (fresh)
        timers(
          session,
          setTimeout(() => cancel(session), timerDelay(peerNotAfter.getTime() - state.at)),
        );
      return now().getTime() - state.at >= state.maxAge;
    },
  };
}

/**
 * A server interceptor: each call's peer is checked as an X.509-SVID against its own trust domain's bundle
 * (UNAUTHENTICATED when that fails, and the connection is closed gracefully so that the client reconnects)
 * and by the rule (PERMISSION_DENIED). Connections are retired at `maxConnectionAgeMs` (see
 * `sessionRetirement`).
 */
export function spiffeAuthInterceptor(
  source: X509Source,
  authz: Authorizer,
  opts: {
    observe?: Observer;
    now?: () => Date;
    maxConnectionAgeMs?: number;
    maxConnectionAgeGraceMs?: number;
  } = {},
): grpc.ServerInterceptor {
  const now = opts.now ?? (() => new Date());
  const retirement = sessionRetirement(
    source,
    checkMaxConnectionAge(opts.maxConnectionAgeMs, 'spiffeAuthInterceptor'),
    checkMaxConnectionAge(opts.maxConnectionAgeGraceMs, 'spiffeAuthInterceptor', 'maxConnectionAgeGraceMs'),
    now,
  );
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const session = sessionOf(call);
            const verdict = callVerdict(call, source, now(), tlsSocketOf(session));
            if (!verdict.ok) {
              notify(opts.observe, {
                type: 'handshake-failed',
                reason: verdict.reason,
                message: verdict.message,
              });
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: `${verdict.message}: present an X.509-SVID this service trusts`,
              });
              // The certificate of a connection never changes: only a new connection can do better.
              if (session) retirement.retire(session);
            } else if (!authz(verdict.peer)) {
              notify(opts.observe, { type: 'denied', peerId: verdict.peer.id, rule: authz.description });
              call.sendStatus({
                code: grpc.status.PERMISSION_DENIED,
                details: `${verdict.peer.id} is not allowed to call ${method.path}`,
              });
            } else {
              if (session && retirement.pastAge(session, verdict.notAfter)) retirement.retire(session);
              mdNext(metadata);
            }
          },
        });
      },
    });
}

/**
 * Server credentials for `server.bindAsync(address, creds, …)`: the source's SVID, rotated in place; client
 * SVIDs required, verified against the bundle of their trust domain, and authorized by the explicit rule
 * on every call. Connections are closed gracefully at `maxConnectionAgeMs` and when their client
 * certificate stops passing the checks, so a long-lived channel reconnects with its client's current SVID.
 * Handlers read the caller with `callerPeerId(call, source)`.
 */
export function grpcServerCredentials(source: X509Source, opts: GrpcServerOptions): grpc.ServerCredentials {
  const authz = toAuthorizer(opts?.authorize, 'grpcServerCredentials');
  checkMaxConnectionAge(opts.maxConnectionAgeMs, 'grpcServerCredentials');
  checkMaxConnectionAge(opts.maxConnectionAgeGraceMs, 'grpcServerCredentials', 'maxConnectionAgeGraceMs');
  const provider = new SvidCertificateProvider(source, opts.observe);
  const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
  return grpc.experimental.createServerCredentialsWithInterceptors(creds, [
    spiffeAuthInterceptor(source, authz, opts),
  ]);
}

/**
 * Channel credentials for `new Client(address, creds)`: the source's SVID (new connections use the latest),
 * and the server accepted only as an SVID of its trust domain's bundle allowed by `serverId` or
 * `authorizeServer`, never by host name.
 */
export function grpcChannelCredentials(source: X509Source, opts: ClientOptions): grpc.ChannelCredentials {
  const authz = serverAuthorizer(opts);
  const provider = new SvidCertificateProvider(source, opts.observe);
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
    checkServerIdentity: identityCheck(source, authz, opts),
    rejectUnauthorized: true,
  });
}
