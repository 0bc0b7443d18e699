import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import {
  bitString,
  contextExplicit,
  contextPrimitive,
  NULL,
  octetString,
  oid,
  sequence,
  set,
  subjectPublicKeyBits,
  time,
  TRUE,
  unsignedInteger,
  utf8String,
} from './der.ts';
import { PkiError } from './errors.ts';
import { describeKey } from './keys.ts';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, toPem } from './x509.ts';

/** How a CA key signs: the AlgorithmIdentifier written into certificates and the digest for crypto.sign. */
export interface SignatureScheme {
  algorithmIdentifier: Buffer;
  digest: string | null;
}

export function signatureScheme(key: KeyObject): SignatureScheme {
  const spec = describeKey(key);
  switch (spec?.algorithm) {
    case 'ECDSA':
      return spec.size === 384
        ? { algorithmIdentifier: sequence(oid('1.2.840.10045.4.3.3')), digest: 'sha384' }
        : { algorithmIdentifier: sequence(oid('1.2.840.10045.4.3.2')), digest: 'sha256' };
    case 'RSA':
      return { algorithmIdentifier: sequence(oid('1.2.840.113549.1.1.11'), NULL), digest: 'sha256' };
    case 'Ed25519':
      return { algorithmIdentifier: sequence(oid('1.3.101.112')), digest: null };
    default:
      throw new PkiError(
        'CaUnsupportedKey',
        'the CA key type cannot sign SVIDs: use an ECDSA P-256/P-384, Ed25519 or RSA (2048+ bits) CA key',
      );
  }
}

const VERSION_3 = contextExplicit(0, unsignedInteger(Buffer.from([2])));
const OIDS = new Map<string, Buffer>();
// OIDs are encoded once; this runs per issued certificate.
const ext = (id: string, critical: boolean, value: Buffer): Buffer => {
  let encoded = OIDS.get(id);
  if (!encoded) OIDS.set(id, (encoded = oid(id)));
  return critical ? sequence(encoded, TRUE, octetString(value)) : sequence(encoded, octetString(value));
};

// Leaf extensions that never change, encoded once.
const BASIC_CONSTRAINTS_LEAF = ext('2.5.29.19', true, sequence());
const BASIC_CONSTRAINTS_CA = ext('2.5.29.19', true, sequence(TRUE));
// KeyUsage bits, first bit = digitalSignature (0x80); keyEncipherment is the third (0x20).
const KEY_USAGE_SIGN = ext('2.5.29.15', true, bitString(Buffer.from([0x80]), 7));
const KEY_USAGE_SIGN_ENCIPHER = ext('2.5.29.15', true, bitString(Buffer.from([0xa0]), 5));
// keyCertSign (0x04) and cRLSign (0x02) for CAs.
const KEY_USAGE_CA = ext('2.5.29.15', true, bitString(Buffer.from([0x06]), 1));
const EXT_KEY_USAGE = ext('2.5.29.37', false, sequence(oid(EKU_SERVER_AUTH), oid(EKU_CLIENT_AUTH)));
/**
 * Every SVID has an empty subject and a critical subjectAltName. RFC 5280 §4.1.2.6 asks a CA to give each
 * subject entity a unique name; a fixed subject (as before: O=svid-operator for every SVID) gives every
 * workload the same name, which name-keyed tools (session caches, audit logs, chain builders) conflate. The
 * X.509-SVID specification §3.1 says "The Subject field is not required, however the URI SAN extension MUST
 * be marked as critical if Subject is omitted, per section 4.1.2.6 of RFC 5280": the SPIFFE ID in the SAN
 * is the one identity, so no second, invented name (a UUID or serial in the subject, as SPIRE does) can
 * disagree with it.
 */
const SUBJECT_EMPTY = sequence();

/**
 * A positive serial of 126 random bits: the top bit is cleared so the INTEGER is positive and the next one
 * set so its encoding is always 16 bytes, well above the 64 bits the SVID spec asks for.
 */
export function randomSerial(): Buffer {
  const serial = randomBytesFromPool(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  return serial;
}

// Random bytes drawn from the CSPRNG 4 KiB at a time: one randomBytes call per serial was 4 % of the CPU of
// issuing an SVID (the call's fixed cost, not the bytes). Each caller gets a copy of bytes never handed out
// before; the pool holds only bytes of serials yet to be issued, which are public once issued.
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;

function randomBytesFromPool(n: number): Buffer {
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  poolAt += n;
  return out;
}

export interface TbsInput {
  serial: Buffer;
  scheme: SignatureScheme;
  issuer: Buffer;
  notBefore: Date;
  notAfter: Date;
  subject: Buffer;
  spki: Buffer;
  extensions: Buffer[];
}

function tbsCertificate(t: TbsInput): Buffer {
  return sequence(
    VERSION_3,
    unsignedInteger(t.serial),
    t.scheme.algorithmIdentifier,
    t.issuer,
    sequence(time(t.notBefore), time(t.notAfter)),
    t.subject,
    t.spki,
    contextExplicit(3, sequence(...t.extensions)),
  );
}

/** Builds the TBSCertificate, signs it with the issuer key, and returns the certificate as PEM. */
export function signCertificate(t: TbsInput, issuerKey: KeyObject): string {
  const tbs = tbsCertificate(t);
  const signature = sign(t.scheme.digest, tbs, issuerKey);
  return toPem('CERTIFICATE', sequence(tbs, t.scheme.algorithmIdentifier, bitString(signature)));
}

export interface LeafExtensionsInput {
  spiffeId: string;
  dnsNames: readonly string[];
  rsa: boolean;
  subjectKeyId: Buffer;
  authorityKeyId: Buffer;
}

/** The X.509-SVID leaf profile: CA:false, digitalSignature (+keyEncipherment for RSA), both EKUs, one URI. */
export function leafExtensions(l: LeafExtensionsInput): Buffer[] {
  const names = [
    contextPrimitive(6, Buffer.from(l.spiffeId, 'ascii')),
    ...l.dnsNames.map((n) => contextPrimitive(2, Buffer.from(n, 'ascii'))),
  ];
  return [
    BASIC_CONSTRAINTS_LEAF,
    l.rsa ? KEY_USAGE_SIGN_ENCIPHER : KEY_USAGE_SIGN,
    EXT_KEY_USAGE,
    ext('2.5.29.14', false, octetString(l.subjectKeyId)),
    ext('2.5.29.35', false, sequence(contextPrimitive(0, l.authorityKeyId))),
    // Critical because the subject is empty (RFC 5280 §4.1.2.6, X.509-SVID §3.1).
    ext('2.5.29.17', true, sequence(...names)),
  ];
}

export function caExtensions(subjectKeyId: Buffer, trustDomainUri: string): Buffer[] {
  return [
    BASIC_CONSTRAINTS_CA,
    KEY_USAGE_CA,
    ext('2.5.29.14', false, octetString(subjectKeyId)),
    ext('2.5.29.35', false, sequence(contextPrimitive(0, subjectKeyId))),
    ext('2.5.29.17', false, sequence(contextPrimitive(6, Buffer.from(trustDomainUri, 'ascii')))),
  ];
}

export const svidSubject = (): Buffer => SUBJECT_EMPTY;

export function caSubject(commonName: string): Buffer {
  return sequence(
    set(sequence(oid('2.5.4.10'), utf8String('svid-operator'))),
    set(sequence(oid('2.5.4.3'), utf8String(commonName))),
  );
}

/**
 * Signs an X.509-SVID leaf for `spki` with the CA: the one place that applies the SVID profile (empty
 * subject, critical URI SAN, keyUsage and EKU, key identifiers), for SVIDs whose key the operator makes and
 * for public keys it is given (pod certificates). Returns the leaf PEM and its serial.
 */
export function signSvidLeaf(
  ca: { scheme: SignatureScheme; subjectDer: Buffer; subjectKeyId: Buffer; key: KeyObject },
  leaf: {
    spki: Buffer;
    spiffeId: string;
    dnsNames: readonly string[];
    rsa: boolean;
    notBefore: Date;
    notAfter: Date;
  },
): { leafPem: string; serial: Buffer } {
  const serial = randomSerial();
  const leafPem = signCertificate(
    {
      serial,
      scheme: ca.scheme,
      issuer: ca.subjectDer,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      subject: svidSubject(),
      spki: leaf.spki,
      extensions: leafExtensions({
        spiffeId: leaf.spiffeId,
        dnsNames: leaf.dnsNames,
        rsa: leaf.rsa,
        subjectKeyId: createHash('sha1').update(subjectPublicKeyBits(leaf.spki)).digest(),
        authorityKeyId: ca.subjectKeyId,
      }),
    },
    ca.key,
  );
  return { leafPem, serial };
}
