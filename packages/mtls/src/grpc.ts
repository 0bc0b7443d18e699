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
import { createPrivateKey } from 'node:crypto';
import tls, { type PeerCertificate } from 'node:tls';
import { identityCheck, serverAuthorizer, type ClientOptions } from './client.ts';
import { authorizer, spiffeIdOf, type Authorizer, type AuthorizeOptions } from './identity.ts';
import type { Svid } from './source.ts';
import type { SvidProvider } from './svid-provider.ts';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

interface Pushed {
  ca: grpc.experimental.CaCertificateUpdate;
  identity: grpc.experimental.IdentityCertificateUpdate;
  bundlePem: string;
  serial: string;
}

/**
 * A grpc-js CertificateProvider fed by an SVID source: the CA role gets the trust bundle, the identity
 * role the SVID's key and chain. A new SVID is pushed only if it still checks out here (key matches the
 * leaf, the options build a SecureContext); otherwise the previous credentials stay and the source's
 * 'error' event reports why.
 */
export class SvidCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly source: SvidProvider;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private latest: Pushed;
  private readonly onUpdate: (svid: Svid) => void;

  constructor(source: SvidProvider) {
    this.source = source;
    this.latest = SvidCertificateProvider.prepare(source.current());
    this.onUpdate = (svid) => {
      let next: Pushed;
      try {
        next = SvidCertificateProvider.prepare(svid);
      } catch (err) {
        const e = new Error(
          `gRPC credentials keep SVID ${this.latest.serial}: SVID ${svid.serialNumber} was refused: ${(err as Error).message}`,
        );
        if (source.listenerCount('error') > 0) source.emit('error', e);
        return;
      }
      const caChanged = next.bundlePem !== this.latest.bundlePem;
      this.latest = next;
      // The CA first, so a new identity never meets a store that lacks its roots; both in one tick.
      if (caChanged) for (const l of this.caListeners) l(next.ca);
      for (const l of this.identityListeners) l(next.identity);
    };
    source.on('update', this.onUpdate);
  }

  private static prepare(svid: Svid): Pushed {
    const key = Buffer.from(svid.keyPem);
    const certificate = Buffer.from(svid.certChainPem);
    const caCertificate = Buffer.from(svid.bundlePem);
    if (!svid.leaf.checkPrivateKey(createPrivateKey(svid.keyPem)))
      throw new Error('the private key does not match the certificate');
    // Exactly what grpc-js will do with it; if this throws, grpc-js would drop connections instead.
    tls.createSecureContext({ cert: certificate, key, ca: caCertificate });
    return {
      ca: { caCertificate },
      identity: { certificate, privateKey: key },
      bundlePem: svid.bundlePem,
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

/** The verified SPIFFE ID of a server call's peer (undefined without a client SVID). */
export function callerSpiffeId(call: {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}): string | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  return cert ? spiffeIdOf(cert) : undefined;
}

export interface GrpcServerOptions {
  /**
   * Required: which client SPIFFE IDs may call. Allowing every SVID of the trust bundle is an explicit
   * `authorize: () => true`.
   */
  authorize: AuthorizeOptions | string[] | Authorizer;
}

/** A server interceptor: UNAUTHENTICATED without a client SVID, PERMISSION_DENIED when not allowed. */
export function spiffeAuthInterceptor(authz: Authorizer): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const id = callerSpiffeId(call);
            if (!id) {
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: 'a client certificate with a SPIFFE ID from this trust domain is required',
              });
            } else if (!authz(id)) {
              call.sendStatus({
                code: grpc.status.PERMISSION_DENIED,
                details: `${id} is not allowed to call ${method.path}`,
              });
            } else mdNext(metadata);
          },
        });
      },
    });
}

/**
 * Server credentials for `server.bindAsync(address, creds, …)`: the source's SVID, rotated in place; client
 * SVIDs required and verified against the bundle; each call's peer authorized by SPIFFE ID. Handlers read
 * the caller with `callerSpiffeId(call)`.
 */
export function grpcServerCredentials(source: SvidProvider, opts: GrpcServerOptions): grpc.ServerCredentials {
  if (!opts?.authorize)
    throw new Error(
      'say who may call this server: pass authorize (SPIFFE IDs, trust domains or a predicate)',
    );
  const provider = new SvidCertificateProvider(source);
  const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
  return grpc.experimental.createServerCredentialsWithInterceptors(creds, [
    spiffeAuthInterceptor(authorizer(opts.authorize)),
  ]);
}

/**
 * Channel credentials for `new Client(address, creds)`: the source's SVID (new connections use the latest),
 * and the server accepted only by its SPIFFE ID (`serverId` or `authorizeServer`), never by host name.
 */
export function grpcChannelCredentials(source: SvidProvider, opts: ClientOptions): grpc.ChannelCredentials {
  const authz = serverAuthorizer(opts);
  const provider = new SvidCertificateProvider(source);
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
    checkServerIdentity: identityCheck(authz),
    rejectUnauthorized: true,
  });
}
