// Verifying a TLS peer as an X.509-SVID: the SVID leaf rules, its validity, and a chain to the roots of the
// trust domain its SPIFFE ID claims (OpenSSL is given the roots of every trust domain, so this is the check
// that keeps a root of another trust domain from minting identities in ours).
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { chainsTo } from './pem.ts';
import { allRoots, type X509Bundle, type X509Source } from './source/x509-source.ts';
import { svidLeafId, type PeerId } from './x509-svid.ts';

/** Why a peer was refused before authorization. */
export type PeerFailure = 'no-certificate' | 'unknown-ca' | 'expired' | 'wrong-trust-domain' | 'not-an-svid';

export type PeerVerdict =
  { ok: true; peer: PeerId; notAfter: Date } | { ok: false; reason: PeerFailure; message: string };

/**
 * A presented certificate chain, read lazily: the caches below are keyed by fingerprints (which Node has
 * already computed for a detailed PeerCertificate), so a peer seen before costs no certificate parsing.
 */
interface Presented {
  fingerprint: string;
  chainKey: string;
  leaf(): X509Certificate;
  intermediates(): X509Certificate[];
}

function presentedFromX509(leaf: X509Certificate, intermediates: X509Certificate[] | undefined): Presented {
  let list = intermediates;
  const rest = () => (list ??= presentedIntermediates(leaf));
  const fingerprint = leaf.fingerprint256;
  return {
    fingerprint,
    get chainKey() {
      return [fingerprint, ...rest().map((c) => c.fingerprint256)].join('|');
    },
    leaf: () => leaf,
    intermediates: rest,
  };
}

/** The chain of a detailed PeerCertificate (client side, checkServerIdentity), bounded. */
function presentedFromDetailed(cert: PeerCertificate): Presented {
  const chain: PeerCertificate[] = [];
  let c = (cert as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  while (c && c !== cert && chain.length < 10 && c.raw) {
    chain.push(c);
    const next = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
    if (next === c) break;
    c = next;
  }
  let leaf: X509Certificate | undefined;
  let intermediates: X509Certificate[] | undefined;
  return {
    fingerprint: cert.fingerprint256,
    chainKey: [cert.fingerprint256, ...chain.map((x) => x.fingerprint256)].join('|'),
    leaf: () => (leaf ??= new X509Certificate(cert.raw)),
    intermediates: () => (intermediates ??= chain.map((x) => new X509Certificate(x.raw))),
  };
}

// Chain results per bundle object (a source hands out a new object when a bundle changes), keyed by the
// fingerprints of the presented chain; bounded.
const chainCache = new WeakMap<X509Bundle, Map<string, boolean>>();
const CHAIN_CACHE_MAX = 1024;

/**
 * Whether the presented chain leads to a root of `bundle`. A server on Node.js 24.21 loses the first
 * intermediate a client sent once OpenSSL has verified the chain (Node's own post-handshake
 * getPeerX509Certificate call deletes it from the peer chain: nodejs/node#65579; Node 22 keeps it), so `own`
 * (the intermediates above this service's own SVID) are candidates too: a client of our trust domain is
 * issued under the same CA chain. Extra candidates cannot create trust: every link is checked by signature
 * up to a root of the claimed trust domain.
 */
function chainsToBundle(presented: Presented, bundle: X509Bundle, own: readonly X509Certificate[]): boolean {
  let cache = chainCache.get(bundle);
  if (!cache) chainCache.set(bundle, (cache = new Map()));
  const key = [presented.chainKey, ...own.map((c) => c.fingerprint256)].join('|');
  let result = cache.get(key);
  if (result === undefined) {
    result = chainsTo(presented.leaf(), [...presented.intermediates(), ...own], bundle.roots);
    if (cache.size >= CHAIN_CACHE_MAX) cache.clear();
    cache.set(key, result);
  }
  return result;
}

/** The intermediates above the source's own leaf (none when its CA is a root, or before it has an SVID). */
function ownIntermediates(source: X509Source): readonly X509Certificate[] {
  try {
    return source.current().certificates.slice(1);
  } catch {
    return [];
  }
}

/** The certificates a peer sent after its leaf, as Node linked them (bounded). */
function presentedIntermediates(leaf: X509Certificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (let c = leaf.issuerCertificate; c && out.length < 10; c = c.issuerCertificate) {
    if (out.includes(c) || c === leaf) break;
    out.push(c);
  }
  return out;
}

type LeafFacts = { ok: true; peer: PeerId; notBefore: Date; notAfter: Date } | { ok: false; problem: string };

// What a leaf says about itself does not change: its SVID check and validity, by fingerprint; bounded. A
// busy server sees the same few peers over and over, and this keeps the per-handshake cost to a hash lookup.
const leafCache = new Map<string, LeafFacts>();
const LEAF_CACHE_MAX = 1024;

function leafFacts(presented: Presented): LeafFacts {
  let facts = leafCache.get(presented.fingerprint);
  if (!facts) {
    const leaf = presented.leaf();
    const svid = svidLeafId(leaf);
    facts = svid.ok
      ? { ok: true, peer: svid.peer, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) }
      : svid;
    if (leafCache.size >= LEAF_CACHE_MAX) leafCache.clear();
    leafCache.set(presented.fingerprint, facts);
  }
  return facts;
}

/** Checks a peer leaf (and what it presented) against the source's bundles at `now`. */
export function verifyPeerCertificate(
  leaf: X509Certificate | undefined,
  intermediates: X509Certificate[] | undefined,
  source: X509Source,
  now: Date,
): PeerVerdict {
  if (!leaf) return { ok: false, reason: 'no-certificate', message: 'the peer sent no certificate' };
  return verifyPresented(presentedFromX509(leaf, intermediates), source, now);
}

/** The same check for the detailed certificate checkServerIdentity receives. */
export function verifyDetailedPeerCertificate(
  cert: PeerCertificate | undefined,
  source: X509Source,
  now: Date,
): PeerVerdict {
  if (!cert?.raw) return { ok: false, reason: 'no-certificate', message: 'the peer sent no certificate' };
  return verifyPresented(presentedFromDetailed(cert), source, now);
}

function verifyPresented(presented: Presented, source: X509Source, now: Date): PeerVerdict {
  const facts = leafFacts(presented);
  if (!facts.ok) {
    return { ok: false, reason: 'not-an-svid', message: `the peer is not an X.509-SVID: ${facts.problem}` };
  }
  const { peer, notBefore, notAfter } = facts;
  if (now >= notAfter) {
    return {
      ok: false,
      reason: 'expired',
      message: `the certificate of ${peer.id} expired at ${notAfter.toISOString()}`,
    };
  }
  if (now < notBefore) {
    return { ok: false, reason: 'expired', message: `the certificate of ${peer.id} is not valid yet` };
  }
  const bundle = source.bundleFor(peer.trustDomain);
  if (!bundle) {
    return {
      ok: false,
      reason: 'wrong-trust-domain',
      message: `${peer.id} is of trust domain ${peer.trustDomain}, which this service has no trust bundle for`,
    };
  }
  const own = ownIntermediates(source);
  if (!chainsToBundle(presented, bundle, own)) {
    return {
      ok: false,
      reason: 'wrong-trust-domain',
      message:
        `the certificate of ${peer.id} does not chain to a root of trust domain ${peer.trustDomain}` +
        (missingIntermediates(presented, source, own)
          ? missingIntermediatesHint(presented, peer.trustDomain)
          : ''),
    };
  }
  return { ok: true, peer, notAfter };
}

/**
 * Whether the chain is incomplete rather than anchored elsewhere: no intermediate came with the leaf and
 * nothing this service knows (a root of any trust domain, or its own intermediates) issued it. Only on the
 * refusal path.
 */
function missingIntermediates(
  presented: Presented,
  source: X509Source,
  own: readonly X509Certificate[],
): boolean {
  if (presented.intermediates().length > 0) return false;
  const leaf = presented.leaf();
  return ![...allRoots(source), ...own].some((c) => leaf.checkIssued(c));
}

function missingIntermediatesHint(presented: Presented, trustDomain: string): string {
  return (
    `: it was issued by "${presented.leaf().issuer.replace(/\n/g, ', ')}", which is no root this service trusts, ` +
    'and no intermediate CA certificate came with it. Either that CA is a root that has left ' +
    `${trustDomain}'s trust bundle (a retired CA after a rotation: the peer needs an SVID from the current CA, ` +
    'which its SVID source fetches on its next renewal), or it is an intermediate the peer did not send. If the ' +
    'peer does send its intermediates, the cause is Node.js: a server on Node.js 24.21 loses the first ' +
    `intermediate a client sent once OpenSSL has verified the chain (nodejs/node#65579). Add that intermediate CA to ${trustDomain}'s trust bundle ` +
    '(federatedBundles, or the bundle the SVID source reads) or run the server on Node.js 22'
  );
}

/** OpenSSL's verification error codes, as Node reports them on `authorizationError`, by reason. */
export function reasonOfVerifyError(code: string): PeerFailure {
  return code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' ? 'expired' : 'unknown-ca';
}

interface SocketState {
  leaf: X509Certificate | undefined;
  verdict: PeerVerdict;
  bundle: X509Bundle | undefined;
  establishedAt: number;
}
const sockets = new WeakMap<TLSSocket, SocketState>();

/**
 * The verdict on a server socket's peer, re-checked on every call (every request): the certificate may have
 * expired since the handshake, or its trust domain's bundle may have changed (a retired root).
 */
export function socketVerdict(socket: TLSSocket, source: X509Source, now: Date): PeerVerdict {
  let state = sockets.get(socket);
  if (!state) {
    const leaf = socket.getPeerX509Certificate();
    const verdict: PeerVerdict = !leaf
      ? { ok: false, reason: 'no-certificate', message: 'a client certificate (an X.509-SVID) is required' }
      : !socket.authorized
        ? {
            ok: false,
            reason: reasonOfVerifyError(String(socket.authorizationError)),
            message: `the client certificate was refused: ${String(socket.authorizationError)}`,
          }
        : verifyPeerCertificate(leaf, undefined, source, now);
    state = { leaf, verdict, bundle: undefined, establishedAt: now.getTime() };
    if (verdict.ok) state.bundle = source.bundleFor(verdict.peer.trustDomain);
    sockets.set(socket, state);
    return verdict;
  }
  const { verdict } = state;
  if (!verdict.ok) return verdict;
  if (now >= verdict.notAfter || source.bundleFor(verdict.peer.trustDomain) !== state.bundle) {
    state.verdict = verifyPeerCertificate(state.leaf, undefined, source, now);
    state.bundle = state.verdict.ok ? source.bundleFor(state.verdict.peer.trustDomain) : undefined;
  }
  return state.verdict;
}

/** When the socket's verdict was first taken (for the connection-age bound). */
export function socketEstablishedAt(socket: TLSSocket): number | undefined {
  return sockets.get(socket)?.establishedAt;
}
