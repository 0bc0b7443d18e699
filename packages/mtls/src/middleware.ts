// Express and Fastify helpers. Types only come from those frameworks, so neither is a dependency.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { authorizer, peerSpiffeId, type Authorizer, type AuthorizeOptions } from './identity.ts';

/**
 * Identity from a TLS terminator in front of the service (Envoy, nginx), which passes the client's identity
 * in a header. Off unless configured; the header is believed only when the direct mTLS peer is one of
 * `trustedPeers`, so a client cannot claim an identity by sending the header itself.
 */
export interface TrustedProxyOptions {
  /** SPIFFE IDs (or a rule) of the proxies allowed to vouch for clients. */
  trustedPeers: AuthorizeOptions | string[] | Authorizer;
  /**
   * 'xfcc' reads Envoy's x-forwarded-client-cert (URI= of the element the nearest proxy added); any other
   * value is a header holding the SPIFFE ID itself, e.g. set by nginx from the client certificate.
   */
  header: 'xfcc' | string;
}

export interface IdentityOptions {
  authorize: AuthorizeOptions | string[] | Authorizer;
  trustedProxy?: TrustedProxyOptions;
}

/** Splits on `sep` outside double quotes (XFCC quotes values that contain separators). */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === sep && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

/** The client's SPIFFE ID from an XFCC header: URI= of the last element, the one the nearest proxy added. */
export function spiffeIdFromXfcc(header: string): string | undefined {
  const elements = splitOutsideQuotes(header, ',');
  const last = elements[elements.length - 1] ?? '';
  for (const pair of splitOutsideQuotes(last, ';')) {
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim().toLowerCase() !== 'uri') continue;
    const value = pair
      .slice(eq + 1)
      .trim()
      .replace(/^"|"$/g, '');
    return value.startsWith('spiffe://') ? value : undefined;
  }
  return undefined;
}

/** The caller's SPIFFE ID: the mTLS peer's, or with a trusted proxy configured, the one it vouches for. */
export function callerSpiffeId(req: IncomingMessage, trustedProxy?: TrustedProxyOptions): string | undefined {
  const peer = peerSpiffeId(req.socket as TLSSocket);
  if (!peer || !trustedProxy) return peer;
  if (!authorizer(trustedProxy.trustedPeers)(peer)) return peer;
  const name = trustedProxy.header === 'xfcc' ? 'x-forwarded-client-cert' : trustedProxy.header.toLowerCase();
  const raw = req.headers[name];
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  if (!value) return undefined;
  return trustedProxy.header === 'xfcc'
    ? spiffeIdFromXfcc(value)
    : value.startsWith('spiffe://')
      ? value.trim()
      : undefined;
}

type Verdict = { ok: true; spiffeId: string } | { ok: false; status: 401 | 403; error: string };

function judge(req: IncomingMessage, authz: Authorizer, trustedProxy?: TrustedProxyOptions): Verdict {
  const id = callerSpiffeId(req, trustedProxy);
  if (!id) return { ok: false, status: 401, error: 'a client certificate with a SPIFFE ID is required' };
  if (!authz(id)) return { ok: false, status: 403, error: `${id} is not allowed to call this service` };
  return { ok: true, spiffeId: id };
}

/** Express middleware: 401/403 with a JSON body, or `req.spiffeId` set and next(). */
export function expressSpiffeAuth(opts: IdentityOptions) {
  const authz = authorizer(opts.authorize);
  return (req: IncomingMessage & { spiffeId?: string }, res: ServerResponse, next: () => void): void => {
    const verdict = judge(req, authz, opts.trustedProxy);
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

/** A Fastify onRequest hook: `app.addHook('onRequest', fastifySpiffeAuth({ authorize }))`. */
export function fastifySpiffeAuth(opts: IdentityOptions) {
  const authz = authorizer(opts.authorize);
  return async (request: FastifyLikeRequest, reply: FastifyLikeReply): Promise<void> => {
    const verdict = judge(request.raw, authz, opts.trustedProxy);
    if (!verdict.ok) {
      await reply.code(verdict.status).send({ error: verdict.error });
      return;
    }
    request.spiffeId = verdict.spiffeId;
  };
}
