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

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
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
 * Whether `start` chains to one of `roots` through `intermediates`: each step checks the issuer name and the
 * signature. Bounded by the number of intermediates, so a loop in the input cannot spin.
 */
export function chainsTo(
  start: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): boolean {
  let current = start;
  for (let depth = 0; depth <= intermediates.length + 1; depth++) {
    if (roots.some((r) => current.checkIssued(r) && current.verify(r.publicKey))) return true;
    const next = intermediates.find(
      (c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey),
    );
    if (!next) return false;
    current = next;
  }
  return false;
}
