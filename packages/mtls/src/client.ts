// Outbound mTLS: an https.Agent and an undici dispatcher that present the current SVID and accept a server
// only by its SPIFFE ID, verified against the bundle of the server's own trust domain. Hostname checks do
// not fit SPIFFE, and Node's own check ignores URI SANs, so checkServerIdentity is replaced; TLS session
// resumption is off (a resumed session would skip that check), and a resumed session is refused anyway.
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { Agent as UndiciAgent, buildConnector, Dispatcher } from 'undici';
import { authorizeId, type Authorizer } from './authorize.ts';
import { maxConnectionAgeMs, timerDelay } from './connection-age.ts';
import { notify, type Observer } from './observe.ts';
import { verifyDetailedPeerCertificate } from './peer.ts';
import { toPem } from './pem.ts';
import { credentialPem } from './server.ts';
import { allRoots, type X509Source, type X509Svid } from './source/x509-source.ts';

export interface ClientOptions {
  /** The server's expected SPIFFE ID(s)... */
  serverId?: string | string[];
  /** ...or any rule for it. One of the two is required: an mTLS client must know whom it talks to. */
  authorizeServer?: Authorizer;
  /**
   * New connections replace pooled ones older than this, so a rotation or a retired root reaches every
   * server. Default: a quarter of the lifetime of the client's SVID.
   */
  maxConnectionAgeMs?: number;
  observe?: Observer;
  /** The clock, for tests. */
  now?: () => Date;
}

export function serverAuthorizer(opts: ClientOptions): Authorizer {
  if (opts.serverId) return authorizeId(...(Array.isArray(opts.serverId) ? opts.serverId : [opts.serverId]));
  if (opts.authorizeServer) return opts.authorizeServer;
  throw new Error('say which server to trust: pass serverId (its SPIFFE ID) or authorizeServer (a rule)');
}

/** checkServerIdentity for SPIFFE: an SVID of its trust domain's bundle, allowed by the rule. */
export function identityCheck(
  source: X509Source,
  authz: Authorizer,
  opts: ClientOptions,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  const now = opts.now ?? (() => new Date());
  return (_host, cert) => {
    const verdict = verifyDetailedPeerCertificate(cert, source, now());
    if (!verdict.ok) {
      notify(opts.observe, { type: 'handshake-failed', reason: verdict.reason, message: verdict.message });
      return new Error(`the server was refused: ${verdict.message}`);
    }
    if (!authz(verdict.peer)) {
      notify(opts.observe, { type: 'denied', peerId: verdict.peer.id, rule: authz.description });
      return new Error(
        `the server is ${verdict.peer.id}, which is not the expected server (${authz.description})`,
      );
    }
    return undefined;
  };
}

export function refuseResumed(socket: tls.TLSSocket): void {
  socket.once('secureConnect', () => {
    if (socket.isSessionReused())
      socket.destroy(new Error('a resumed TLS session was refused: its server was not checked'));
  });
}

/**
 * Nothing is exchanged with a server after its certificate expired: the connection is closed at the
 * server certificate's notAfter, whatever is still open on it (a pooled idle connection, a response that
 * never ends, an HTTP/2 session). The connection age bounds how long the client keeps using a connection;
 * this bounds it by the server's certificate too, which may expire long before the client's own rotation.
 * Call it once the socket is connected (from 'secureConnect' on).
 */
export function closeAtServerExpiry(
  socket: tls.TLSSocket,
  now: () => Date = () => new Date(),
  close: (reason: Error) => void = (reason) => socket.destroy(reason),
): void {
  const validTo = socket.getPeerCertificate()?.valid_to;
  const notAfter = validTo ? Date.parse(validTo) : NaN;
  // identityCheck accepted this certificate, so its notAfter parses; one that does not is not kept.
  const delay = Number.isFinite(notAfter) ? timerDelay(notAfter - now().getTime()) : 0;
  const timer = setTimeout(
    () =>
      close(
        new Error(
          `the connection was closed: the server's certificate expired${Number.isFinite(notAfter) ? ` at ${new Date(notAfter).toISOString()}` : ''}`,
        ),
      ),
    delay,
  ).unref();
  socket.once('close', () => clearTimeout(timer));
}

export function clientTlsOptions(source: X509Source, svid: X509Svid) {
  return {
    ...credentialPem(svid),
    ca: allRoots(source).map((c) => toPem('CERTIFICATE', c.raw)),
    minVersion: 'TLSv1.2' as const,
  };
}

/**
 * An https.Agent for `https.request(url, { agent })`. Connections are pooled per credential generation:
 * after a rotation, or when the pool is older than `maxConnectionAgeMs`, new requests get new connections,
 * requests on old ones finish, and idle old ones are closed.
 */
export class SvidAgent extends https.Agent {
  private readonly authz: Authorizer;
  private readonly opts: ClientOptions;
  private context: tls.SecureContext;
  private generation = 0;
  private bornAt: number;
  private readonly onUpdate: (svid: X509Svid) => void;
  private readonly source: X509Source;

  constructor(source: X509Source, opts: ClientOptions, agentOptions: https.AgentOptions = {}) {
    super({ keepAlive: true, ...agentOptions, maxCachedSessions: 0 });
    this.source = source;
    this.opts = opts;
    this.authz = serverAuthorizer(opts);
    this.context = tls.createSecureContext(clientTlsOptions(source, source.current()));
    this.bornAt = this.now();
    this.onUpdate = (svid) => {
      this.context = tls.createSecureContext(clientTlsOptions(source, svid));
      this.renew();
    };
    source.on('update', this.onUpdate);
  }

  private now(): number {
    return (this.opts.now ?? (() => new Date()))().getTime();
  }

  private renew(): void {
    this.generation++;
    this.bornAt = this.now();
    for (const [name, sockets] of Object.entries(this.freeSockets)) {
      if (!name.endsWith(`|svid${this.generation}`)) for (const s of sockets ?? []) s.destroy();
    }
  }

  override getName(options?: https.RequestOptions): string {
    const maxAge = maxConnectionAgeMs(this.source, this.opts.maxConnectionAgeMs);
    if (this.now() - this.bornAt >= maxAge) this.renew();
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
        checkServerIdentity: identityCheck(this.source, this.authz, this.opts),
        rejectUnauthorized: true,
        session: undefined,
      },
      callback,
    );
    socket.disableRenegotiation();
    refuseResumed(socket);
    socket.once('secureConnect', () => closeAtServerExpiry(socket, this.opts.now));
    return socket;
  }

  override destroy(): void {
    this.source.off('update', this.onUpdate);
    super.destroy();
  }
}

/**
 * An undici dispatcher, for `fetch(url, { dispatcher })` or undici's setGlobalDispatcher. Each credential
 * generation gets its own undici Agent (undici copies TLS options when a connector is built); after a
 * rotation, or when it is older than `maxConnectionAgeMs`, the old one is closed gracefully: its in-flight
 * requests finish, then its connections close. TLS session resumption is off.
 */
export class SvidDispatcher extends Dispatcher {
  private current: UndiciAgent;
  private bornAt: number;
  private readonly retiring = new Set<UndiciAgent>();
  private readonly authz: Authorizer;
  private readonly opts: ClientOptions;
  private readonly source: X509Source;
  private readonly agentOptions: UndiciAgent.Options;
  private readonly onUpdate: (svid: X509Svid) => void;

  constructor(source: X509Source, opts: ClientOptions, agentOptions: UndiciAgent.Options = {}) {
    super();
    this.source = source;
    this.opts = opts;
    this.authz = serverAuthorizer(opts);
    this.agentOptions = agentOptions;
    this.current = this.build(source.current());
    this.bornAt = this.now();
    this.onUpdate = (svid) => this.replace(svid);
    source.on('update', this.onUpdate);
  }

  private now(): number {
    return (this.opts.now ?? (() => new Date()))().getTime();
  }

  private replace(svid: X509Svid): void {
    const old = this.current;
    this.current = this.build(svid);
    this.bornAt = this.now();
    this.retiring.add(old);
    void old.close().finally(() => this.retiring.delete(old));
  }

  private build(svid: X509Svid): UndiciAgent {
    const connector = buildConnector({
      ...clientTlsOptions(this.source, svid),
      rejectUnauthorized: true,
      checkServerIdentity: identityCheck(this.source, this.authz, this.opts),
      maxCachedSessions: 0,
    });
    const connect: buildConnector.connector = (options, callback) =>
      connector(options, (err, socket) => {
        if (socket instanceof tls.TLSSocket) {
          socket.disableRenegotiation();
          if (socket.isSessionReused()) {
            socket.destroy();
            callback(new Error('a resumed TLS session was refused: its server was not checked'), null);
            return;
          }
          closeAtServerExpiry(socket, this.opts.now);
        }
        if (err) callback(err, null);
        else callback(null, socket as NonNullable<typeof socket>);
      });
    return new UndiciAgent({ ...this.agentOptions, connect });
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const maxAge = maxConnectionAgeMs(this.source, this.opts.maxConnectionAgeMs);
    if (this.now() - this.bornAt >= maxAge) this.replace(this.source.current());
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
