// The SPIFFE trust bundle format (SPIFFE Trust Domain and Bundle spec, §4): a JWK Set whose X.509 roots
// are keys with `use: "x509-svid"` and exactly one certificate in `x5c`, plus `spiffe_sequence` (increases
// on every change) and `spiffe_refresh_hint` (seconds). Pure code; no Kubernetes I/O.
import { X509Certificate } from 'node:crypto';
import { pemBlocks } from '../pki/index.ts';

export interface SpiffeJwk {
  kty: string;
  use: 'x509-svid';
  x5c: [string];
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

export interface SpiffeBundle {
  keys: SpiffeJwk[];
  spiffe_sequence: number;
  spiffe_refresh_hint: number;
}

/** The JWK of each root in `rootsPem` (in order, duplicates dropped), with the root itself as `x5c`. */
export function rootsToJwks(rootsPem: string): SpiffeJwk[] {
  const seen = new Set<string>();
  const keys: SpiffeJwk[] = [];
  for (const block of pemBlocks(rootsPem)) {
    if (block.label !== 'CERTIFICATE') continue;
    const der = block.der.toString('base64');
    if (seen.has(der)) continue;
    seen.add(der);
    const jwk = new X509Certificate(block.der).publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const { kty, crv, x, y, n, e } = jwk;
    keys.push({
      kty: kty ?? '',
      use: 'x509-svid',
      x5c: [der],
      ...(crv ? { crv } : {}),
      ...(x ? { x } : {}),
      ...(y ? { y } : {}),
      ...(n ? { n } : {}),
      ...(e ? { e } : {}),
    });
  }
  return keys;
}

/**
 * The bundle to publish for `rootsPem`, given the one published before (if any): the sequence is kept when
 * the roots are unchanged and is one more than before when they changed, so a reader can tell "new" from
 * "same" across operator restarts (the previous value comes from the API, not from memory).
 */
export function nextSpiffeBundle(
  rootsPem: string,
  previous: SpiffeBundle | undefined,
  refreshHintSeconds: number,
): SpiffeBundle {
  const keys = rootsToJwks(rootsPem);
  const sameKeys =
    previous !== undefined &&
    previous.keys.length === keys.length &&
    previous.keys.every((k, i) => k.x5c[0] === keys[i]?.x5c[0]) &&
    previous.spiffe_refresh_hint === refreshHintSeconds;
  const sequence = previous ? (sameKeys ? previous.spiffe_sequence : previous.spiffe_sequence + 1) : 1;
  return { keys, spiffe_sequence: sequence, spiffe_refresh_hint: refreshHintSeconds };
}

/**
 * Reads a published bundle back, strictly, the way a SPIFFE consumer does: a JSON object with a `keys`
 * array; every `x509-svid` key has exactly one `x5c` entry that is a certificate whose public key is the
 * JWK's; a non-negative integer sequence. Returns undefined with a reason instead of throwing.
 */
export function parseSpiffeBundle(text: string): { bundle: SpiffeBundle } | { problem: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { problem: 'not a JSON object' };
  const o = doc as Record<string, unknown>;
  if (!Array.isArray(o.keys)) return { problem: '"keys" is not an array' };
  const seq = o.spiffe_sequence;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    return { problem: '"spiffe_sequence" is not a non-negative integer' };
  }
  const hint = o.spiffe_refresh_hint;
  if (typeof hint !== 'number' || !Number.isSafeInteger(hint) || hint <= 0) {
    return { problem: '"spiffe_refresh_hint" is not a positive integer' };
  }
  const keys: SpiffeJwk[] = [];
  for (const [i, k] of (o.keys as unknown[]).entries()) {
    if (typeof k !== 'object' || k === null) return { problem: `keys[${i}] is not an object` };
    const key = k as Record<string, unknown>;
    if (key.use !== 'x509-svid') continue;
    if (!Array.isArray(key.x5c) || key.x5c.length !== 1 || typeof key.x5c[0] !== 'string') {
      return { problem: `keys[${i}] must have exactly one x5c certificate` };
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(Buffer.from(key.x5c[0], 'base64'));
    } catch {
      return { problem: `keys[${i}].x5c[0] is not a DER certificate` };
    }
    const jwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, string>;
    for (const field of ['kty', 'crv', 'x', 'y', 'n', 'e']) {
      if (jwk[field] !== key[field]) return { problem: `keys[${i}].${field} does not match its certificate` };
    }
    keys.push(key as unknown as SpiffeJwk);
  }
  return { bundle: { keys, spiffe_sequence: seq, spiffe_refresh_hint: hint } };
}
