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
import tls, { TLSSocket, type PeerCertificate } from 'node:tls';
import { toAuthorizer, type Authorizer } from './authorize.ts';
import { identityCheck, serverAuthorizer, type ClientOptions } from './client.ts';
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
  /** Handshake failures, denials and rotations. */
  observe?: Observer;
  /** The clock, for tests. */
  now?: () => Date;
}

/**
 * The TLS socket of a server call, where grpc-js has it: its base call holds the HTTP/2 stream; the call a
 * handler gets wraps the intercepting calls (`call`, then `nextCall`) down to it (grpc-js 1.10 to 1.14).
 * Undefined where that shape is not found.
 */
function tlsSocketOf(call: unknown): TLSSocket | undefined {
  type Shape = { stream?: { session?: { socket?: unknown } }; call?: unknown; nextCall?: unknown };
  let c = call as Shape | undefined;
  for (let depth = 0; c && typeof c === 'object' && depth < 16; depth++) {
    const socket = c.stream?.session?.socket;
    if (socket instanceof TLSSocket) return socket;
    c = (c.call ?? c.nextCall) as Shape | undefined;
  }
  return undefined;
}

/**
 * The verdict on a call's peer. With the socket it is the HTTPS servers' per-connection verdict (taken once
 * per connection, re-checked when the certificate expires or its trust domain's bundle changes, and with
 * the intermediates the peer sent); otherwise it is taken from the call's peer certificate.
 */
function callVerdict(call: AuthContextCall, source: X509Source, now: Date): PeerVerdict {
  const socket = tlsSocketOf(call);
  if (socket) return socketVerdict(socket, source, now);
  return verifyDetailedPeerCertificate(call.getAuthContext().sslPeerCertificate, source, now);
}

/**
 * A server interceptor: each call's peer is checked as an X.509-SVID against its own trust domain's bundle
 * (UNAUTHENTICATED when that fails) and by the rule (PERMISSION_DENIED).
 */
export function spiffeAuthInterceptor(
  source: X509Source,
  authz: Authorizer,
  opts: { observe?: Observer; now?: () => Date } = {},
): grpc.ServerInterceptor {
  const now = opts.now ?? (() => new Date());
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const verdict = callVerdict(call, source, now());
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
            } else if (!authz(verdict.peer)) {
              notify(opts.observe, { type: 'denied', peerId: verdict.peer.id, rule: authz.description });
              call.sendStatus({
                code: grpc.status.PERMISSION_DENIED,
                details: `${verdict.peer.id} is not allowed to call ${method.path}`,
              });
            } else mdNext(metadata);
          },
        });
      },
    });
}

/**
 * Server credentials for `server.bindAsync(address, creds, …)`: the source's SVID, rotated in place; client
 * SVIDs required, verified against the bundle of their trust domain, and authorized by the explicit rule
 * on every call. Handlers read the caller with `callerPeerId(call, source)`.
 */
export function grpcServerCredentials(source: X509Source, opts: GrpcServerOptions): grpc.ServerCredentials {
  const authz = toAuthorizer(opts?.authorize, 'grpcServerCredentials');
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
