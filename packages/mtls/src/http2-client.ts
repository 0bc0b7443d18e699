// An HTTP/2 client with the current SVID that accepts the server only by its SPIFFE ID. One session at a
// time: after a rotation the next request opens a new session with the new SVID, and the old session is
// closed gracefully (its open streams finish, it takes no new ones).
import http2 from 'node:http2';
import type tls from 'node:tls';
import tlsModule from 'node:tls';
import type { Authorizer } from './authorize.ts';
import {
  clientTlsOptions,
  closeAtServerExpiry,
  identityCheck,
  serverAuthorizer,
  type ClientOptions,
} from './client.ts';
import type { X509Source, X509Svid } from './source/x509-source.ts';

export interface Http2ClientOptions extends ClientOptions {
  /** Further options for http2.connect (not the credentials, which come from the source). */
  session?: Omit<
    http2.SecureClientSessionOptions,
    'cert' | 'key' | 'ca' | 'secureContext' | 'checkServerIdentity'
  >;
}

export class SvidHttp2Client {
  readonly authority: string;
  private readonly source: X509Source;
  private readonly opts: Http2ClientOptions;
  private readonly authz: Authorizer;
  private readonly sessionOptions: Http2ClientOptions['session'];
  private readonly onUpdate: (svid: X509Svid) => void;
  private context: tls.SecureContext;
  private active: http2.ClientHttp2Session | undefined;
  private readonly retiring = new Set<http2.ClientHttp2Session>();
  private closed = false;

  constructor(source: X509Source, authority: string, opts: Http2ClientOptions) {
    this.source = source;
    this.authority = authority;
    this.opts = opts;
    this.authz = serverAuthorizer(opts);
    this.sessionOptions = opts.session;
    this.context = tlsModule.createSecureContext(clientTlsOptions(source, source.current()));
    this.onUpdate = (svid) => {
      this.context = tlsModule.createSecureContext(clientTlsOptions(source, svid));
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
      checkServerIdentity: identityCheck(this.source, this.authz, this.opts),
      rejectUnauthorized: true,
    } as http2.SecureClientSessionOptions);
    // No TLS session is ever offered for resumption here; a resumed one would have skipped the check above.
    session.once('connect', (_s, socket) => {
      if ((socket as tls.TLSSocket).isSessionReused())
        session.destroy(new Error('a resumed TLS session was refused: its server was not checked'));
      // Its streams end when the server's certificate expires; the next request opens a new session.
      else closeAtServerExpiry(socket as tls.TLSSocket, this.opts.now, (reason) => session.destroy(reason));
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
  source: X509Source,
  authority: string,
  opts: Http2ClientOptions,
): SvidHttp2Client {
  return new SvidHttp2Client(source, authority, opts);
}
