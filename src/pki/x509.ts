import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { pemBlocks, toPem } from '@svid-operator/mtls/pem';
import {
  certificateExtensions,
  readBasicConstraintsCa,
  readExtKeyUsage,
  readKeyUsage,
  readSubjectAltNames,
  readSubjectKeyIdentifier,
  type RawExtension,
} from '@svid-operator/mtls/der';
import { readHeader, subjectPublicKeyBits } from './der.ts';
import { PkiError } from './errors.ts';

export { pemBlocks, toPem } from '@svid-operator/mtls/pem';

/**
 * Every certificate in a PEM text, in order. `what` names the source for the error message
 * (e.g. "the CA Secret's tls.crt").
 */
export function parseCertificates(pem: string | undefined, what: string, code: string): X509Certificate[] {
  const blocks = pemBlocks(pem ?? '').filter((b) => b.label === 'CERTIFICATE');
  if (blocks.length === 0) {
    throw new PkiError(code, `${what} holds no PEM certificate ("-----BEGIN CERTIFICATE-----" block)`);
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b.der);
    } catch {
      throw new PkiError(
        code,
        `certificate ${i + 1} in ${what} is not valid DER: the PEM is truncated or corrupt`,
      );
    }
  });
}

/** A private key from PEM. The error never quotes the input: it may be key material. */
export function parsePrivateKey(pem: string | undefined, what: string, code: string): KeyObject {
  if (!pem || !pem.includes('PRIVATE KEY-----')) {
    throw new PkiError(code, `${what} holds no PEM private key ("-----BEGIN PRIVATE KEY-----" block)`);
  }
  try {
    return createPrivateKey(pem);
  } catch {
    throw new PkiError(
      code,
      `${what} is not a readable PEM private key: it is truncated, corrupt or encrypted`,
    );
  }
}

export function pemOf(cert: X509Certificate): string {
  return toPem('CERTIFICATE', cert.raw);
}

/** The raw DER of the subject Name, copied from the certificate so issuer fields match byte for byte. */
export function rawSubject(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const tbs = readHeader(der, 0).header;
  let offset = tbs + readHeader(der, tbs).header;
  // version [0] is optional; then serial, signature algorithm, issuer, validity, subject.
  if (der[offset] === 0xa0) offset = skip(der, offset);
  for (let i = 0; i < 4; i++) offset = skip(der, offset);
  const { header, length } = readHeader(der, offset);
  return der.subarray(offset, offset + header + length);
}

function skip(der: Buffer, offset: number): number {
  const { header, length } = readHeader(der, offset);
  return offset + header + length;
}

export interface CertificateProfile {
  isCa: boolean | undefined;
  basicConstraintsCritical: boolean;
  keyUsage: number | undefined;
  keyUsageCritical: boolean;
  extKeyUsage: string[] | undefined;
  uris: string[];
  dnsNames: string[];
  otherSans: number;
  subjectAltNameCritical: boolean;
  subjectKeyId: Buffer | undefined;
}

const id_ce_basicConstraints = '2.5.29.19';
const id_ce_keyUsage = '2.5.29.15';
const id_ce_extKeyUsage = '2.5.29.37';
const id_ce_subjectAltName = '2.5.29.17';
const id_ce_subjectKeyIdentifier = '2.5.29.14';

const EXTENSION_NAMES: Record<string, string> = {
  [id_ce_basicConstraints]: 'basicConstraints',
  [id_ce_keyUsage]: 'keyUsage',
  [id_ce_extKeyUsage]: 'extKeyUsage',
  [id_ce_subjectAltName]: 'subjectAltName',
  [id_ce_subjectKeyIdentifier]: 'subjectKeyIdentifier',
};

/** RFC 5280 §4.2.1.3 key usage bits as readKeyUsage numbers them (bit i is 2^i). */
export const KeyUsageFlags = {
  digitalSignature: 1,
  nonRepudiation: 2,
  keyEncipherment: 4,
  dataEncipherment: 8,
  keyAgreement: 16,
  keyCertSign: 32,
  cRLSign: 64,
  encipherOnly: 128,
  decipherOnly: 256,
} as const;

/**
 * The extensions that the SVID and CA rules are about, read with the library's strict DER reader (`@svid-operator/mtls/der`). Node's X509Certificate
 * accepts a certificate whose extension contents are not valid DER (it reads them lazily), so every parse
 * failure here is a PkiError ('CaBadExtension') naming the extension, not a raw parser exception.
 */
export function profile(cert: X509Certificate): CertificateProfile {
  const result: CertificateProfile = {
    isCa: undefined,
    basicConstraintsCritical: false,
    keyUsage: undefined,
    keyUsageCritical: false,
    extKeyUsage: undefined,
    uris: [],
    dnsNames: [],
    otherSans: 0,
    subjectAltNameCritical: false,
    subjectKeyId: undefined,
  };
  let extensions: RawExtension[];
  try {
    extensions = certificateExtensions(cert.raw);
  } catch {
    throw new PkiError(
      'CaBadExtension',
      `the certificate ${describeSubject(cert)} has extensions that are not valid DER: reissue the certificate`,
    );
  }
  for (const ext of extensions) {
    try {
      readExtension(result, ext.id, ext.critical, ext.value);
    } catch {
      throw new PkiError(
        'CaBadExtension',
        `the ${EXTENSION_NAMES[ext.id] ?? ext.id} extension is not valid DER in the certificate ${describeSubject(cert)}: reissue the certificate`,
      );
    }
  }
  return result;
}

const describeSubject = (cert: X509Certificate) => `"${cert.subject.replace(/\n/g, ', ')}"`;

function readExtension(result: CertificateProfile, id: string, critical: boolean, value: Uint8Array): void {
  switch (id) {
    case id_ce_basicConstraints:
      result.isCa = readBasicConstraintsCa(value);
      result.basicConstraintsCritical = critical;
      break;
    case id_ce_keyUsage:
      result.keyUsage = readKeyUsage(value);
      result.keyUsageCritical = critical;
      break;
    case id_ce_extKeyUsage:
      result.extKeyUsage = readExtKeyUsage(value);
      break;
    case id_ce_subjectAltName: {
      result.subjectAltNameCritical = critical;
      const names = readSubjectAltNames(value);
      result.uris.push(...names.uris);
      result.dnsNames.push(...names.dnsNames);
      result.otherSans += names.other;
      break;
    }
    case id_ce_subjectKeyIdentifier:
      result.subjectKeyId = readSubjectKeyIdentifier(value);
      break;
  }
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest();
}

export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
