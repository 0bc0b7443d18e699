import { generateKeyPair as generateKeyPairCb, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { util } from '../builtins.ts';
import { PkiError } from './errors.ts';

const generate = util.promisify(generateKeyPairCb);

export type KeySpec =
  | { algorithm: 'ECDSA'; size: 256 | 384 }
  | { algorithm: 'Ed25519' }
  | { algorithm: 'RSA'; size: 2048 | 3072 | 4096 };

export const DEFAULT_KEY: KeySpec = { algorithm: 'ECDSA', size: 256 };

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/**
 * A fresh key pair. RSA generation takes up to seconds (4096 bits) and runs on the thread pool so it never
 * blocks the event loop; ECDSA and Ed25519 take ~20-50 µs, less than the ~60 µs hop to the thread pool
 * and back costs, so they run inline.
 */
export async function generateKeyPair(spec: KeySpec): Promise<KeyPair> {
  switch (spec.algorithm) {
    case 'ECDSA':
      return generateKeyPairSync('ec', { namedCurve: spec.size === 384 ? 'P-384' : 'P-256' });
    case 'Ed25519':
      return generateKeyPairSync('ed25519');
    case 'RSA':
      return generate('rsa', { modulusLength: spec.size });
  }
}

/** The KeySpec of an existing key, or undefined for a type this project does not issue or sign with. */
export function describeKey(key: KeyObject): KeySpec | undefined {
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details?.namedCurve === 'prime256v1') return { algorithm: 'ECDSA', size: 256 };
      if (details?.namedCurve === 'secp384r1') return { algorithm: 'ECDSA', size: 384 };
      return undefined;
    case 'ed25519':
      return { algorithm: 'Ed25519' };
    case 'rsa': {
      const bits = details?.modulusLength;
      return bits === 2048 || bits === 3072 || bits === 4096 ? { algorithm: 'RSA', size: bits } : undefined;
    }
    default:
      return undefined;
  }
}

export function formatKeySpec(spec: KeySpec): string {
  return spec.algorithm === 'Ed25519' ? 'Ed25519' : `${spec.algorithm}-${spec.size}`;
}

export function sameKeySpec(a: KeySpec, b: KeySpec): boolean {
  return formatKeySpec(a) === formatKeySpec(b);
}

/**
 * A KeySpec from an algorithm name and optional size, with defaults (ECDSA 256, RSA 2048): the shape of
 * `spec.privateKey` in a WorkloadIdentity and of svidctl's `--algorithm ECDSA-384`.
 */
export function keySpecFrom(algorithm: string, size?: number): KeySpec {
  const alg = algorithm.toUpperCase();
  if (alg === 'ECDSA' || alg === 'EC') {
    const s = size ?? 256;
    if (s === 256 || s === 384) return { algorithm: 'ECDSA', size: s };
    throw new PkiError('UnsupportedKey', `ECDSA keys have size 256 or 384, not ${s}`);
  }
  if (alg === 'ED25519') {
    if (size !== undefined) throw new PkiError('UnsupportedKey', 'Ed25519 keys have no size; leave it out');
    return { algorithm: 'Ed25519' };
  }
  if (alg === 'RSA') {
    const s = size ?? 2048;
    if (s === 2048 || s === 3072 || s === 4096) return { algorithm: 'RSA', size: s };
    throw new PkiError('UnsupportedKey', `RSA keys have size 2048, 3072 or 4096, not ${s}`);
  }
  throw new PkiError('UnsupportedKey', `unknown key algorithm "${algorithm}": use ECDSA, Ed25519 or RSA`);
}

/** Parses "ECDSA", "ECDSA-384", "Ed25519", "RSA-3072" (svidctl's --algorithm). */
export function parseKeySpec(text: string): KeySpec {
  const match = /^([A-Za-z0-9]+?)(?:-(\d+))?$/.exec(text.trim());
  if (!match?.[1]) {
    throw new PkiError(
      'UnsupportedKey',
      `cannot read key algorithm "${text}": use ECDSA-256, ECDSA-384, Ed25519, RSA-2048, RSA-3072 or RSA-4096`,
    );
  }
  return keySpecFrom(match[1], match[2] === undefined ? undefined : Number(match[2]));
}
