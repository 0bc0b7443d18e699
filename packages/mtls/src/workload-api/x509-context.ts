// From a decoded X509SVIDResponse to certificates and keys: the SVIDs in the agent's order (the first is
// the default), and the trust bundles keyed by trust domain name (each SVID's own bundle for its trust
// domain, plus the federated ones). This only parses; whether an SVID is usable (key matches, chains to
// its trust domain's bundle, in date) is checked by the source before it is used.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { parseSpiffeId, SpiffeIdError, trustDomainProblem } from '../spiffe-id.ts';
import { splitDer } from './der.ts';
import { WorkloadApiError } from './errors.ts';
import type { X509SvidMessage, X509SvidResponseMessage } from './messages.ts';

export interface WorkloadSvid {
  spiffeId: string;
  hint: string;
  /** The leaf first, then intermediates. */
  chain: X509Certificate[];
  key: KeyObject;
}

export interface X509Context {
  svids: WorkloadSvid[];
  /** Trust domain name (no scheme) → its root certificates. */
  bundles: Map<string, X509Certificate[]>;
}

/** A trust domain name from a federated_bundles key: `example.org` or `spiffe://example.org`. */
export function trustDomainFromKey(key: string): string {
  const td = key.startsWith('spiffe://') ? key.slice('spiffe://'.length) : key;
  if (trustDomainProblem(td) !== undefined)
    throw new WorkloadApiError(
      'malformed',
      `federated bundle key ${JSON.stringify(key.slice(0, 300))} is not a trust domain`,
    );
  return td;
}

/** The trust domain of a SPIFFE ID, by the library's one SPIFFE-ID parser. */
export function trustDomainOfId(spiffeId: string): string {
  try {
    return parseSpiffeId(spiffeId).trustDomain;
  } catch (err) {
    if (!(err instanceof SpiffeIdError)) throw err;
    throw new WorkloadApiError(
      'malformed',
      `${JSON.stringify(spiffeId.slice(0, 300))} is not a SPIFFE ID: ${err.message}`,
    );
  }
}

function certificates(der: Uint8Array, what: string): X509Certificate[] {
  const parts = splitDer(der, what);
  if (parts.length === 0) throw new WorkloadApiError('malformed', `${what} is empty`);
  return parts.map((p, i) => {
    try {
      return new X509Certificate(p);
    } catch {
      throw new WorkloadApiError('malformed', `${what}: certificate ${i + 1} does not parse`);
    }
  });
}

function parseSvid(s: X509SvidMessage, i: number): WorkloadSvid {
  const what = `SVID ${i + 1} (${s.spiffeId || 'no SPIFFE ID'})`;
  trustDomainOfId(s.spiffeId);
  const chain = certificates(s.x509Svid, `${what} certificate chain`);
  if (s.x509SvidKey.length === 0) throw new WorkloadApiError('malformed', `${what} has no private key`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(s.x509SvidKey), format: 'der', type: 'pkcs8' });
  } catch {
    // The key's bytes are never quoted.
    throw new WorkloadApiError('malformed', `${what}: the private key is not an unencrypted DER PKCS#8 key`);
  }
  return { spiffeId: s.spiffeId, hint: s.hint, chain, key };
}

/** Parses a response; throws WorkloadApiError ('malformed' or 'no-svid') naming the first problem. */
export function parseX509Context(msg: X509SvidResponseMessage): X509Context {
  if (msg.svids.length === 0)
    throw new WorkloadApiError('no-svid', 'the Workload API response holds no SVID');
  const svids = msg.svids.map(parseSvid);
  const bundles = new Map<string, X509Certificate[]>();
  for (const [key, der] of msg.federatedBundles) {
    bundles.set(trustDomainFromKey(key), certificates(der, `federated bundle ${key.slice(0, 300)}`));
  }
  // An SVID's own bundle is authoritative for its trust domain.
  msg.svids.forEach((s, i) => {
    bundles.set(trustDomainOfId(s.spiffeId), certificates(s.bundle, `SVID ${i + 1} (${s.spiffeId}) bundle`));
  });
  return { svids, bundles };
}

/** The SVID to use: the first (the agent's default), or the first with `hint`. */
export function pickSvid(ctx: X509Context, hint?: string): WorkloadSvid {
  if (hint === undefined || hint === '') return ctx.svids[0] as WorkloadSvid;
  const found = ctx.svids.find((s) => s.hint === hint);
  if (!found) {
    const hints = [...new Set(ctx.svids.map((s) => s.hint).filter(Boolean))];
    throw new WorkloadApiError(
      'no-svid',
      `no SVID with hint ${JSON.stringify(hint)}; the agent sent ${hints.length ? `hints ${hints.map((h) => JSON.stringify(h)).join(', ')}` : 'no hints'}`,
    );
  }
  return found;
}
