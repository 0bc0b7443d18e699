// The X.509-SVID rules for a leaf (X.509-SVID specification §4 and §5), applied to every peer and to the
// library's own SVID, with the project's one SPIFFE-ID parser.
import type { X509Certificate } from 'node:crypto';
import { CRL_SIGN, KEY_CERT_SIGN, keyUsageBits } from './der.ts';
import { parseSubjectAltName } from './san.ts';
import { parseSpiffeId, SpiffeIdError, type SpiffeId } from './spiffe-id.ts';

/** A parsed, valid SPIFFE ID: what authorization rules look at (never a string prefix). */
export interface PeerId extends SpiffeId {
  /** The whole ID, e.g. spiffe://example.org/ns/shop/sa/payments. */
  readonly id: string;
  /** The path split into segments: ['ns', 'shop', 'sa', 'payments']. */
  readonly segments: readonly string[];
}

export function toPeerId(id: string): PeerId {
  const parsed = parseSpiffeId(id);
  return { id, ...parsed, segments: parsed.path === '' ? [] : parsed.path.slice(1).split('/') };
}

/**
 * The SPIFFE ID of an X.509-SVID leaf, or the reason it is not one: exactly one URI SAN, a valid SPIFFE ID
 * with a non-root path, CA false, no keyCertSign or cRLSign.
 */
export function svidLeafId(
  leaf: X509Certificate,
): { ok: true; peer: PeerId } | { ok: false; problem: string } {
  const uris = parseSubjectAltName(leaf.subjectAltName).filter((e) => e.type === 'URI');
  if (uris.length !== 1) {
    return {
      ok: false,
      problem: `the certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one`,
    };
  }
  let peer: PeerId;
  try {
    peer = toPeerId((uris[0] as { value: string }).value);
  } catch (err) {
    if (err instanceof SpiffeIdError)
      return { ok: false, problem: `its URI SAN is not a SPIFFE ID: ${err.message}` };
    throw err;
  }
  if (peer.path === '') return { ok: false, problem: `${peer.id} has no path; an X.509-SVID leaf needs one` };
  if (leaf.ca) return { ok: false, problem: `the certificate for ${peer.id} is a CA (CA:TRUE)` };
  let ku: number | undefined;
  try {
    ku = keyUsageBits(leaf.raw);
  } catch {
    return { ok: false, problem: `the certificate for ${peer.id} has a malformed extension` };
  }
  if (ku !== undefined && (ku & (KEY_CERT_SIGN | CRL_SIGN)) !== 0) {
    return {
      ok: false,
      problem: `the certificate for ${peer.id} may sign certificates (keyCertSign or cRLSign)`,
    };
  }
  return { ok: true, peer };
}
