// Inbound mTLS: HTTPS, HTTP/2 and plain TLS servers that require a client SVID from the trust bundle and
// take a rotated SVID without dropping a connection.
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import tls from 'node:tls';
import { authorizer, peerSpiffeId, type Authorizer, type AuthorizeOptions } from './identity.ts';
import type { Svid, SvidSource } from './source.ts';

/** TLS settings beyond the credentials; kept and re-applied on every rotation. */
export type ExtraTlsOptions = Omit<
  tls.TlsOptions,
  'cert' | 'key' | 'ca' | 'requestCert' | 'rejectUnauthorized' | 'secureContext'
>;

export interface ServerOptions {
  /** Which client SPIFFE IDs may talk to the server. Without it, any SVID from the trust bundle may. */
  authorize?: AuthorizeOptions | string[] | Authorizer;
  tls?: ExtraTlsOptions;
}

/**
 * The complete option set for a server's secure context. setSecureContext replaces the whole context, so
 * anything left out (the client CA above all) would silently be lost after the first rotation.
 */
export function serverTlsOptions(svid: Svid, extra: ExtraTlsOptions = {}): tls.TlsOptions {
  return { minVersion: 'TLSv1.2', ...extra, cert: svid.certChainPem, key: svid.keyPem, ca: svid.bundlePem };
}

function rotateWith(server: tls.Server, source: SvidSource, extra: ExtraTlsOptions | undefined): void {
  const onUpdate = (svid: Svid) => {
    // The source validated the set; a failure here (e.g. a cipher option the new key cannot use) keeps the
    // old context serving.
    try {
      server.setSecureContext(serverTlsOptions(svid, extra));
    } catch (err) {
      source.emit('error', err as Error);
    }
  };
  source.on('update', onUpdate);
  server.once('close', () => source.off('update', onUpdate));
}

export interface SpiffeRequest extends IncomingMessage {
  spiffeId?: string;
}

function answer(res: ServerResponse | http2.Http2ServerResponse, status: number, error: string): void {
  const body = JSON.stringify({ error });
  (res as ServerResponse).writeHead(status, { 'content-type': 'application/json' }).end(body);
}

/**
 * Checks the peer of a request: 401 without a client SVID, 403 when the authorizer refuses it; otherwise
 * sets `req.spiffeId` and returns true.
 */
export function checkPeer(
  req: IncomingMessage | http2.Http2ServerRequest,
  res: ServerResponse | http2.Http2ServerResponse,
  authz: Authorizer | undefined,
): boolean {
  const socket = ('stream' in req ? req.stream.session?.socket : req.socket) as tls.TLSSocket | undefined;
  const id = socket ? peerSpiffeId(socket) : undefined;
  if (!id) {
    answer(res, 401, 'a client certificate with a SPIFFE ID from this trust domain is required');
    return false;
  }
  if (authz && !authz(id)) {
    answer(res, 403, `${id} is not allowed to call this service`);
    return false;
  }
  (req as SpiffeRequest).spiffeId = id;
  return true;
}

export function createHttpsServer(
  source: SvidSource,
  opts: ServerOptions,
  listener: (req: SpiffeRequest, res: ServerResponse) => void,
): https.Server {
  const authz = opts.authorize ? authorizer(opts.authorize) : undefined;
  const server = https.createServer(
    { ...serverTlsOptions(source.current(), opts.tls), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      if (checkPeer(req, res, authz)) listener(req, res);
    },
  );
  rotateWith(server, source, opts.tls);
  return server;
}

export function createHttp2Server(
  source: SvidSource,
  opts: ServerOptions,
  listener: (req: http2.Http2ServerRequest & { spiffeId?: string }, res: http2.Http2ServerResponse) => void,
): http2.Http2SecureServer {
  const authz = opts.authorize ? authorizer(opts.authorize) : undefined;
  const server = http2.createSecureServer(
    {
      ...serverTlsOptions(source.current(), opts.tls),
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: true,
    },
    (req, res) => {
      if (checkPeer(req, res, authz)) listener(req, res);
    },
  );
  rotateWith(server, source, opts.tls);
  return server;
}

/** A TLS server; a peer without an allowed SVID is disconnected before `listener` sees it. */
export function createTlsServer(
  source: SvidSource,
  opts: ServerOptions,
  listener: (socket: tls.TLSSocket, spiffeId: string) => void,
): tls.Server {
  const authz = opts.authorize ? authorizer(opts.authorize) : undefined;
  const server = tls.createServer(
    { ...serverTlsOptions(source.current(), opts.tls), requestCert: true, rejectUnauthorized: true },
    (socket) => {
      const id = peerSpiffeId(socket);
      if (!id || (authz && !authz(id))) {
        socket.destroy();
        return;
      }
      listener(socket, id);
    },
  );
  rotateWith(server, source, opts.tls);
  return server;
}
