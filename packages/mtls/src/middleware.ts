// Express and Fastify helpers. Types only come from those frameworks, so neither is a dependency.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { toAuthorizer, type Authorizer } from './authorize.ts';
import { notify, type Observer } from './observe.ts';
import { socketVerdict } from './peer.ts';
import type { X509Source } from './source/x509-source.ts';
import { SpiffeIdError } from './spiffe-id.ts';
import { xfccClientUri } from './xfcc.ts';
import { toPeerId, type PeerId } from './x509-svid.ts';

/**
 * Identity from a TLS terminator in front of the service (Envoy, nginx), which passes the client's identity
 * in a header. Off unless configured; the header is believed only when the direct mTLS peer is allowed by
 * `trustedPeers`, so a client cannot claim an identity by sending the header itself.
 */
export interface TrustedProxyOptions {
  /** The proxies allowed to vouch for clients: authorizeId(...) of their SPIFFE IDs, or their IDs. */
  trustedPeers: Authorizer | readonly string[];
  /**
   * 'xfcc' reads Envoy's x-forwarded-client-cert strictly (see parseXfcc): URI= of the element the proxy
   * added, whose By=, when present, must be the proxy's own ID. Any other value names a header holding the
   * SPIFFE ID itself, e.g. set by nginx from the client certificate.
   */
  header: 'xfcc' | string;
}

export interface IdentityOptions {
  /** The source whose trust bundles verify the direct peer (per trust domain). */
  source: X509Source;
  /** Required, as for the servers: authorizeId(...), authorizeMemberOf(td), authorizeAny(), ... */
  authorize: Authorizer | readonly string[];
  trustedProxy?: TrustedProxyOptions;
  observe?: Observer;
}

type Caller = { ok: true; peer: PeerId } | { ok: false; message: string };

/** The caller: the verified mTLS peer, or with a trusted proxy as the peer, the client it vouches for. */
export function callerIdentity(
  req: IncomingMessage,
  source: X509Source,
  trustedProxy?: TrustedProxyOptions,
  observe?: Observer,
): Caller {
  const socket = req.socket as TLSSocket;
  const verdict =
    typeof socket.getPeerX509Certificate === 'function'
      ? socketVerdict(socket, source, new Date())
      : ({ ok: false, reason: 'no-certificate', message: 'the request did not come over TLS' } as const);
  if (!verdict.ok) {
    notify(observe, {
      type: 'handshake-failed',
      reason: verdict.reason,
      message: verdict.message,
      remoteAddress: socket.remoteAddress,
    });
    return { ok: false, message: `${verdict.message}: a client certificate (an X.509-SVID) is required` };
  }
  if (!trustedProxy || !toAuthorizer(trustedProxy.trustedPeers, 'trustedProxy.trustedPeers')(verdict.peer)) {
    return { ok: true, peer: verdict.peer };
  }
  const xfcc = trustedProxy.header === 'xfcc';
  const name = xfcc ? 'x-forwarded-client-cert' : trustedProxy.header.toLowerCase();
  const raw = req.headers[name];
  if (raw === undefined) return { ok: false, message: `the proxy ${verdict.peer.id} sent no ${name} header` };
  if (Array.isArray(raw) && !xfcc) return { ok: false, message: `the proxy sent ${name} more than once` };
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  let uri: string;
  if (xfcc) {
    const result = xfccClientUri(value, verdict.peer.id);
    if (!result.ok) return { ok: false, message: result.reason };
    uri = result.uri;
  } else uri = value;
  try {
    return { ok: true, peer: toPeerId(uri) };
  } catch (err) {
    if (err instanceof SpiffeIdError)
      return { ok: false, message: `the proxy vouched for a client whose ${err.message}` };
    throw err;
  }
}

type Verdict = { ok: true; spiffeId: string } | { ok: false; status: 401 | 403; error: string };

function judge(req: IncomingMessage, opts: IdentityOptions, authz: Authorizer): Verdict {
  const caller = callerIdentity(req, opts.source, opts.trustedProxy, opts.observe);
  if (!caller.ok) return { ok: false, status: 401, error: caller.message };
  if (!authz(caller.peer)) {
    notify(opts.observe, { type: 'denied', peerId: caller.peer.id, rule: authz.description });
    return { ok: false, status: 403, error: `${caller.peer.id} is not allowed to call this service` };
  }
  return { ok: true, spiffeId: caller.peer.id };
}

/** Express middleware: 401/403 with a JSON body, or `req.spiffeId` set and next(). */
export function expressSpiffeAuth(opts: IdentityOptions) {
  const authz = toAuthorizer(opts.authorize, 'expressSpiffeAuth');
  return (req: IncomingMessage & { spiffeId?: string }, res: ServerResponse, next: () => void): void => {
    const verdict = judge(req, opts, authz);
    if (!verdict.ok) {
      res
        .writeHead(verdict.status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: verdict.error }));
      return;
    }
    req.spiffeId = verdict.spiffeId;
    next();
  };
}

interface FastifyLikeRequest {
  raw: IncomingMessage;
  spiffeId?: string;
}
interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  send(body: unknown): unknown;
}

/** A Fastify onRequest hook: `app.addHook('onRequest', fastifySpiffeAuth({ source, authorize }))`. */
export function fastifySpiffeAuth(opts: IdentityOptions) {
  const authz = toAuthorizer(opts.authorize, 'fastifySpiffeAuth');
  return async (request: FastifyLikeRequest, reply: FastifyLikeReply): Promise<void> => {
    const verdict = judge(request.raw, opts, authz);
    if (!verdict.ok) {
      await reply.code(verdict.status).send({ error: verdict.error });
      return;
    }
    request.spiffeId = verdict.spiffeId;
  };
}
