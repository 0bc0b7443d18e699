// Signing an X.509-SVID for a public key someone else holds the private half of (a PodCertificateRequest:
// the kubelet made the key on the node). Pure code: which key types are accepted, how the SubjectPublicKeyInfo
// is read out of a PKIX key or a stub PKCS#10 request, and the signature itself with the same leaf profile
// as issueSvid.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { parseSpiffeId } from '../spiffe/index.ts';
import type { LoadedCa } from './ca.ts';
import { readHeader } from './der.ts';
import { PkiError } from './errors.ts';
import { describeKey, type KeySpec } from './keys.ts';
import { signSvidLeaf } from './signer.ts';

/** Largest SubjectPublicKeyInfo or stub PKCS#10 request read (the API server's own limit is 10 KiB). */
export const MAX_REQUEST_BYTES = 10 * 1024;

/**
 * The key types a pod certificate may have: the intersection of what the API server accepts for a
 * PodCertificateRequest (ECDSA P-256/P-384/P-521, Ed25519, RSA 3072/4096) and what this PKI issues.
 */
export function podKeyProblem(spec: KeySpec | undefined, described: string): string | undefined {
  if (!spec) {
    return `the requested key (${described}) is not supported by this signer: set the podCertificate volume's keyType to ECDSAP256, ECDSAP384, ED25519, RSA3072 or RSA4096`;
  }
  if (spec.algorithm === 'RSA' && spec.size === 2048) {
    return 'RSA-2048 keys are not accepted for pod certificates: set keyType to RSA3072, RSA4096, ECDSAP256, ECDSAP384 or ED25519';
  }
  return undefined;
}

function describeRaw(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') return `EC ${d?.namedCurve ?? 'explicit curve'}`;
  if (key.asymmetricKeyType === 'rsa') return `RSA-${d?.modulusLength ?? '?'}`;
  return String(key.asymmetricKeyType);
}

/** A public key from DER SubjectPublicKeyInfo, checked against the accepted types; the canonical DER. */
export function acceptPublicKey(spkiDer: Buffer): { key: KeyObject; spec: KeySpec; spki: Buffer } {
  if (spkiDer.length === 0 || spkiDer.length > MAX_REQUEST_BYTES) {
    throw new PkiError(
      'BadPublicKey',
      `the public key is ${spkiDer.length} bytes; expected a DER SubjectPublicKeyInfo of 1 to ${MAX_REQUEST_BYTES} bytes`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch {
    throw new PkiError(
      'BadPublicKey',
      'the public key is not a DER SubjectPublicKeyInfo this signer can read',
    );
  }
  const spec = describeKey(key);
  const problem = podKeyProblem(spec, describeRaw(key));
  if (problem || !spec) throw new PkiError('UnsupportedKey', problem ?? 'unsupported key');
  // Re-encoded by OpenSSL: a named curve and an uncompressed point, whatever the request used.
  return { key, spec, spki: key.export({ type: 'spki', format: 'der' }) };
}

/** The element at `offset`: its tag, where its content starts, and where it ends; bounds-checked. */
function element(der: Buffer, offset: number, what: string): { tag: number; start: number; end: number } {
  if (offset + 2 > der.length) throw new PkiError('BadRequest', `the PKCS#10 request is truncated (${what})`);
  const first = der[offset + 1] ?? 0;
  if (first > 0x84) throw new PkiError('BadRequest', `the PKCS#10 request has an invalid length (${what})`);
  const { header, length } = readHeader(der, offset);
  const end = offset + header + length;
  if (end > der.length) throw new PkiError('BadRequest', `the PKCS#10 request is truncated (${what})`);
  return { tag: der[offset] ?? 0, start: offset + header, end };
}

/**
 * The SubjectPublicKeyInfo of a DER PKCS#10 CertificationRequest (RFC 2986):
 * SEQUENCE { SEQUENCE { version INTEGER, subject Name, subjectPKInfo, [0] attributes }, alg, signature }.
 * Only the key is taken; the API server has already checked the request's signature (the proof of
 * possession), and nothing else in it (subject, attributes) ever reaches the certificate.
 */
export function spkiFromPkcs10(der: Buffer): Buffer {
  if (der.length === 0 || der.length > MAX_REQUEST_BYTES) {
    throw new PkiError(
      'BadRequest',
      `the PKCS#10 request is ${der.length} bytes; expected 1 to ${MAX_REQUEST_BYTES} bytes`,
    );
  }
  const outer = element(der, 0, 'CertificationRequest');
  if (outer.tag !== 0x30 || outer.end !== der.length) {
    throw new PkiError('BadRequest', 'the PKCS#10 request is not one DER SEQUENCE');
  }
  const info = element(der, outer.start, 'certificationRequestInfo');
  if (info.tag !== 0x30) throw new PkiError('BadRequest', 'the PKCS#10 request info is not a SEQUENCE');
  const version = element(der, info.start, 'version');
  if (version.tag !== 0x02) throw new PkiError('BadRequest', 'the PKCS#10 request has no version');
  const subject = element(der, version.end, 'subject');
  if (subject.tag !== 0x30) throw new PkiError('BadRequest', 'the PKCS#10 request has no subject');
  const spki = element(der, subject.end, 'subjectPKInfo');
  if (spki.tag !== 0x30 || spki.end > info.end) {
    throw new PkiError('BadRequest', 'the PKCS#10 request has no subjectPKInfo');
  }
  return der.subarray(subject.end, spki.end);
}

export interface PublicKeySvidRequest {
  spiffeId: string;
  /** DER SubjectPublicKeyInfo of the holder's key. */
  spki: Buffer;
  /** Exact validity: the caller decides (a PodCertificateRequest's status must match the certificate). */
  notBefore: Date;
  notAfter: Date;
}

export interface SignedSvid {
  /** The leaf, then the intermediates up to (not including) the root. */
  certChainPem: string;
  serialNumber: string;
  keySpec: KeySpec;
  notBefore: Date;
  notAfter: Date;
}

const wholeSeconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);

/**
 * Signs an X.509-SVID for a public key (same profile as issueSvid: one URI SAN, CA:false, digitalSignature
 * (+keyEncipherment for RSA), server+client auth). notBefore/notAfter are truncated to whole seconds, as
 * a certificate carries them, and must lie inside the CA's validity.
 */
export function signSvidForPublicKey(ca: LoadedCa, req: PublicKeySvidRequest): SignedSvid {
  parseSpiffeId(req.spiffeId);
  const { spec, spki } = acceptPublicKey(req.spki);
  const notBefore = wholeSeconds(req.notBefore);
  const notAfter = wholeSeconds(req.notAfter);
  if (!(notAfter > notBefore)) {
    throw new PkiError('InvalidDuration', 'notAfter must be after notBefore');
  }
  if (notBefore < ca.notBefore || notAfter > ca.notAfter) {
    throw new PkiError(
      'CaValidityTooShort',
      `the CA (valid ${ca.notBefore.toISOString()} to ${ca.notAfter.toISOString()}) cannot cover ${notBefore.toISOString()} to ${notAfter.toISOString()}: rotate the CA to one that is valid for longer`,
    );
  }
  const { leafPem, serial } = signSvidLeaf(ca, {
    spki,
    spiffeId: req.spiffeId,
    dnsNames: [],
    rsa: spec.algorithm === 'RSA',
    notBefore,
    notAfter,
  });
  return {
    certChainPem: leafPem + ca.chainPem,
    serialNumber: serial.toString('hex'),
    keySpec: spec,
    notBefore,
    notAfter,
  };
}
