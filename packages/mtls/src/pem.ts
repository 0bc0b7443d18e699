// PEM and certificate chains: the one helper the operator and the library share.
import { X509Certificate } from 'node:crypto';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** Every PEM block in a text, in order, with its label ("CERTIFICATE", "PRIVATE KEY", ...) and DER bytes. */
export function pemBlocks(pem: string): { label: string; der: Buffer }[] {
  return [...pem.matchAll(PEM_BLOCK)].map((m) => ({
    label: m[1] ?? '',
    der: Buffer.from((m[2] ?? '').replace(/\s+/g, ''), 'base64'),
  }));
}

/**
 * PEM of DER bytes: base64 in lines of 64 characters (RFC 7468). Lines are cut with slices, not a regular
 * expression: the regex was 6.5 % of the CPU of issuing an SVID (a certificate and a key per issue).
 */
export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64');
  let body = '';
  for (let at = 0; at < b64.length; at += 64) body += `${b64.slice(at, at + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body || '\n'}-----END ${label}-----\n`;
}

/** Why a PEM text could not be read as certificates; the message names the text (`what`) and the fault. */
export class PemError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PemError';
  }
}

/**
 * Every certificate of a PEM text, in order. Throws a PemError when there is none ("holds no PEM
 * certificate") or one does not parse ("is truncated or corrupt"); `what` names the text in the message.
 */
export function certificatesFromPem(pem: string, what: string): X509Certificate[] {
  const blocks = pemBlocks(pem).filter((b) => b.label === 'CERTIFICATE');
  if (blocks.length === 0) throw new PemError(`${what} holds no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b.der);
    } catch {
      throw new PemError(
        `${what} holds a truncated or corrupt certificate${blocks.length > 1 ? ` (number ${i + 1})` : ''}`,
      );
    }
  });
}

/**
 * The path from `start` up to one of `roots`: the certificates between them taken from `candidates` (in
 * whatever order those are listed), each link checked by issuer name and signature, and the root reached;
 * undefined when no such path exists. Bounded by the number of candidates, so a loop in the input cannot spin.
 */
export function buildPath(
  start: X509Certificate,
  candidates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  opts: { strict?: boolean } = {},
): { intermediates: X509Certificate[]; root: X509Certificate } | undefined {
  // Strict: OpenSSL's issuer check, which also refuses an issuer without CA:TRUE or keyCertSign. Loose
  // (for CA loading): name and signature only, so such an issuer is found and reported by what it lacks
  // instead of as a broken chain.
  const issuedBy = (child: X509Certificate, parent: X509Certificate) =>
    (opts.strict ? child.checkIssued(parent) : child.issuer === parent.subject) &&
    child.verify(parent.publicKey);
  const path: X509Certificate[] = [];
  let current = start;
  for (let depth = 0; depth <= candidates.length; depth++) {
    const root = roots.find((r) => issuedBy(current, r));
    if (root) return { intermediates: path, root };
    const next = candidates.find((c) => c !== current && !path.includes(c) && issuedBy(current, c));
    if (!next) return undefined;
    path.push(next);
    current = next;
  }
  return undefined;
}

/** Whether `start` chains through `intermediates` (in any order) to one of `roots`, by OpenSSL's issuer check. */
export function chainsTo(
  start: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): boolean {
  return buildPath(start, intermediates, roots, { strict: true }) !== undefined;
}
