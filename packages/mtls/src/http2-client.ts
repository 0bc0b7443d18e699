// An HTTP/2 client with the current SVID that accepts the server only by its SPIFFE ID. One session at a
// time: after a rotation the next request opens a new session with the new SVID, and the old session is
// closed gracefully (its open streams finish, it takes no new ones).
import http2 from 'node:http2';
import type tls from 'node:tls';
import { clientContext, identityCheck, serverAuthorizer, type ClientOptions } from './client.ts';
import type { Authorizer } from './identity.ts';
import { spiffeIdOf } from './identity.ts';
import type { Svid } from './source.ts';
import type { SvidProvider } from './svid-provider.ts';

export interface Http2ClientOptions extends ClientOptions {
  /** Further options for http2.connect (not the credentials, which come from the source). */
  session?: Omit<
    http2.SecureClientSessionOptions,
    'cert' | 'key' | 'ca' | 'secureContext' | 'checkServerIdentity'
  >;
}

export class SvidHttp2Client {
  readonly authority: string;
  private readonly source: SvidProvider;
  private readonly authz: Authorizer;
  private readonly sessionOptions: Http2ClientOptions['session'];
  private readonly onUpdate: (svid: Svid) => void;
  private context: tls.SecureContext;
  private active: http2.ClientHttp2Session | undefined;
  private readonly retiring = new Set<http2.ClientHttp2Session>();
  private closed = false;

  constructor(source: SvidProvider, authority: string, opts: Http2ClientOptions) {
    this.source = source;
    this.authority = authority;
    this.authz = serverAuthorizer(opts);
    this.sessionOptions = opts.session;
    this.context = clientContext(source.current());
    this.onUpdate = (svid) => {
      this.context = clientContext(svid);
      this.retire();
    };
    source.on('update', this.onUpdate);
  }

  /** The session new requests go to; opened on demand with the current SVID. */
  session(): http2.ClientHttp2Session {
    if (this.closed) throw new Error('this HTTP/2 client was closed');
    if (this.active && !this.active.closed && !this.active.destroyed) return this.active;
    const session = http2.connect(this.authority, {
      ...this.sessionOptions,
      secureContext: this.context,
      checkServerIdentity: identityCheck(this.authz),
      rejectUnauthorized: true,
    } as http2.SecureClientSessionOptions);
    // No TLS session is ever offered for resumption here, but a server ID check after the handshake costs
    // nothing and holds whatever the options say.
    session.once('connect', (_s, socket) => {
      const id = spiffeIdOf((socket as tls.TLSSocket).getPeerX509Certificate());
      if (!id || !this.authz(id))
        session.destroy(new Error(`the server is ${id ?? 'unidentified'}, which is not the expected server`));
    });
    session.on('error', () => undefined); // surfaced on the streams that were waiting on it
    session.once('close', () => {
      this.retiring.delete(session);
      if (this.active === session) this.active = undefined;
    });
    this.active = session;
    return session;
  }

  /** Like ClientHttp2Session.request, on the session with the current SVID. */
  request(
    headers: http2.OutgoingHttpHeaders,
    options?: http2.ClientSessionRequestOptions,
  ): http2.ClientHttp2Stream {
    return this.session().request(headers, options);
  }

  private retire(): void {
    const old = this.active;
    this.active = undefined;
    if (old && !old.closed) {
      this.retiring.add(old);
      old.close();
    }
  }

  /** Closes every session gracefully and stops following the source. */
  async close(): Promise<void> {
    this.closed = true;
    this.source.off('update', this.onUpdate);
    this.retire();
    await Promise.all(
      [...this.retiring].map((s) => (s.destroyed ? undefined : new Promise((r) => s.once('close', r)))),
    );
  }
}

/** `http2.connect` for SPIFFE: the current SVID, the server accepted only by its SPIFFE ID, rotation built in. */
export function connectHttp2(
  source: SvidProvider,
  authority: string,
  opts: Http2ClientOptions,
): SvidHttp2Client {
  return new SvidHttp2Client(source, authority, opts);
}
