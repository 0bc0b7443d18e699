// Outbound mTLS: an https.Agent and an undici dispatcher that present the current SVID and accept a server
// only by its SPIFFE ID. Hostname checks do not fit SPIFFE, and Node's own check ignores URI SANs, so
// checkServerIdentity is replaced; resumed TLS sessions skip that check, so they are checked again.
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { Agent as UndiciAgent, buildConnector, Dispatcher } from 'undici';
import { authorizer, spiffeIdOf, type Authorizer, type AuthorizeOptions } from './identity.ts';
import type { Svid, SvidSource } from './source.ts';

export interface ClientOptions {
  /** The server's expected SPIFFE ID(s)... */
  serverId?: string | string[];
  /** ...or any rule for it. One of the two is required: an mTLS client must know whom it talks to. */
  authorizeServer?: AuthorizeOptions | Authorizer;
}

export function serverAuthorizer(opts: ClientOptions): Authorizer {
  if (opts.serverId) return authorizer(Array.isArray(opts.serverId) ? opts.serverId : [opts.serverId]);
  if (opts.authorizeServer) return authorizer(opts.authorizeServer);
  throw new Error('say which server to trust: pass serverId (its SPIFFE ID) or authorizeServer');
}

export function identityCheck(
  authz: Authorizer,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const id = spiffeIdOf(cert);
    if (!id) return new Error('the server presented no SPIFFE ID');
    if (!authz(id)) return new Error(`the server is ${id}, which is not the expected server`);
    return undefined;
  };
}

export function recheckResumed(socket: tls.TLSSocket, authz: Authorizer): void {
  socket.once('secureConnect', () => {
    if (!socket.isSessionReused()) return;
    const id = spiffeIdOf(socket.getPeerX509Certificate());
    if (!id || !authz(id))
      socket.destroy(new Error(`resumed session with ${id ?? 'an unidentified server'} refused`));
  });
}

export const clientContext = (svid: Svid) =>
  tls.createSecureContext({
    cert: svid.certChainPem,
    key: svid.keyPem,
    ca: svid.bundlePem,
    minVersion: 'TLSv1.2',
  });

/**
 * An https.Agent for `https.request(url, { agent })`. Connections are pooled per SVID generation: after a
 * rotation new requests get new connections with the new SVID, while requests on old connections finish;
 * idle old connections are closed.
 *
 * TLS session resumption is off by default: on a resumed TLS 1.3 session Node exposes no peer certificate,
 * so the server's SPIFFE ID could not be checked again (a resumed session it cannot check is refused).
 */
export class SvidAgent extends https.Agent {
  private readonly authz: Authorizer;
  private context: tls.SecureContext;
  private generation: number;
  private readonly onUpdate: (svid: Svid) => void;
  private readonly source: SvidSource;

  constructor(source: SvidSource, opts: ClientOptions, agentOptions: https.AgentOptions = {}) {
    super({ keepAlive: true, maxCachedSessions: 0, ...agentOptions });
    this.source = source;
    this.authz = serverAuthorizer(opts);
    this.context = clientContext(source.current());
    this.generation = source.current().generation;
    this.onUpdate = (svid) => {
      this.context = clientContext(svid);
      this.generation = svid.generation;
      for (const [name, sockets] of Object.entries(this.freeSockets)) {
        if (!name.endsWith(`|svid${svid.generation}`)) for (const s of sockets ?? []) s.destroy();
      }
    };
    source.on('update', this.onUpdate);
  }

  override getName(options?: https.RequestOptions): string {
    return `${super.getName(options)}|svid${this.generation}`;
  }

  override createConnection(
    options: tls.ConnectionOptions,
    callback?: (err: Error | null, socket: Duplex) => void,
  ): Duplex {
    const create = (
      https.Agent.prototype as unknown as {
        createConnection: (o: tls.ConnectionOptions, cb?: unknown) => tls.TLSSocket;
      }
    ).createConnection;
    const socket = create.call(
      this,
      {
        ...options,
        secureContext: this.context,
        checkServerIdentity: identityCheck(this.authz),
        rejectUnauthorized: true,
      },
      callback,
    );
    recheckResumed(socket, this.authz);
    return socket;
  }

  override destroy(): void {
    this.source.off('update', this.onUpdate);
    super.destroy();
  }
}

/**
 * An undici dispatcher, for `fetch(url, { dispatcher })` or undici's setGlobalDispatcher. Each SVID
 * generation gets its own undici Agent (undici copies TLS options when a connector is built); after a
 * rotation the old one is closed gracefully: its in-flight requests finish, then its connections close.
 * TLS session resumption is off, so every connection is identity-checked in a full handshake.
 */
export class SvidDispatcher extends Dispatcher {
  private current: UndiciAgent;
  private readonly retiring = new Set<UndiciAgent>();
  private readonly authz: Authorizer;
  private readonly source: SvidSource;
  private readonly agentOptions: UndiciAgent.Options;
  private readonly onUpdate: (svid: Svid) => void;

  constructor(source: SvidSource, opts: ClientOptions, agentOptions: UndiciAgent.Options = {}) {
    super();
    this.source = source;
    this.authz = serverAuthorizer(opts);
    this.agentOptions = agentOptions;
    this.current = this.build(source.current());
    this.onUpdate = (svid) => {
      const old = this.current;
      this.current = this.build(svid);
      this.retiring.add(old);
      void old.close().finally(() => this.retiring.delete(old));
    };
    source.on('update', this.onUpdate);
  }

  private build(svid: Svid): UndiciAgent {
    const connector = buildConnector({
      cert: svid.certChainPem,
      key: svid.keyPem,
      ca: svid.bundlePem,
      rejectUnauthorized: true,
      checkServerIdentity: identityCheck(this.authz),
      maxCachedSessions: 0,
    });
    return new UndiciAgent({ ...this.agentOptions, connect: connector });
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.current.dispatch(options, handler);
  }

  override async close(): Promise<void> {
    this.source.off('update', this.onUpdate);
    await Promise.all([this.current.close(), ...[...this.retiring].map((a) => a.close())]);
  }

  override async destroy(): Promise<void> {
    this.source.off('update', this.onUpdate);
    await Promise.all([this.current.destroy(), ...[...this.retiring].map((a) => a.destroy())]);
  }
}
