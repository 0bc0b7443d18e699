// Reading and authorizing SPIFFE IDs of TLS peers.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { isSpiffeId } from './spiffe-id.ts';

/**
 * Splits a subjectAltName string ("URI:spiffe://a, DNS:b"). Since CVE-2021-44532 Node quotes entries that
 * contain separators, as JSON strings, so they are parsed, not split blindly.
 */
export function parseSubjectAltName(san: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  const text = san ?? '';
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon).trim();
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      end = text.indexOf(',', j);
    } else {
      end = text.indexOf(',', colon);
      value = text.slice(colon + 1, end < 0 ? undefined : end);
    }
    out.push({ type, value });
    i = end < 0 ? text.length : end + 1;
  }
  return out;
}

/** The SPIFFE ID of an X.509-SVID: its one URI SAN if that is a valid SPIFFE ID; else undefined. */
export function spiffeIdOf(cert: X509Certificate | PeerCertificate | undefined): string | undefined {
  if (!cert) return undefined;
  const san = cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
  const uris = parseSubjectAltName(san).filter((e) => e.type === 'URI');
  return uris.length === 1 && isSpiffeId(uris[0]?.value ?? '') ? uris[0]?.value : undefined;
}

/** The verified peer's SPIFFE ID on a TLS socket (undefined when the peer sent no valid SVID). */
export function peerSpiffeId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  return spiffeIdOf(socket.getPeerX509Certificate());
}

/** Who may connect: exact IDs, whole trust domains, or a predicate; any one that matches allows. */
export interface AuthorizeOptions {
  ids?: string[];
  trustDomains?: string[];
  predicate?: (spiffeId: string) => boolean;
}

export type Authorizer = (spiffeId: string) => boolean;

export function trustDomainOf(spiffeId: string): string {
  return spiffeId.slice('spiffe://'.length).split('/')[0] ?? '';
}

/** An Authorizer from options, a list of IDs, or a predicate. With nothing given, nobody is allowed. */
export function authorizer(rule: AuthorizeOptions | string[] | Authorizer): Authorizer {
  if (typeof rule === 'function') return rule;
  const opts = Array.isArray(rule) ? { ids: rule } : rule;
  const ids = new Set(opts.ids ?? []);
  const domains = new Set(opts.trustDomains ?? []);
  return (id) => ids.has(id) || domains.has(trustDomainOf(id)) || (opts.predicate?.(id) ?? false);
}
