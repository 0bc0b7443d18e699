import type { X509Certificate } from 'node:crypto';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { chainsTo } from '@svid-operator/mtls';
import { validateTrustDomain } from '../spiffe/index.ts';
import { PkiError } from './errors.ts';
import { DEFAULT_KEY, describeKey, formatKeySpec, generateKeyPair, type KeySpec } from './keys.ts';
import {
  caExtensions,
  caSubject,
  randomSerial,
  signatureScheme,
  signCertificate,
  type SignatureScheme,
} from './signer.ts';
import {
  keyIdentifier,
  KeyUsageFlags,
  parseCertificates,
  parsePrivateKey,
  pemOf,
  profile,
  rawSubject,
} from './x509.ts';

// The chain walk is the library's, shared with the operator.
export { chainsTo };

/** The CA Secret's data: tls.crt (CA certificate, then any intermediates), tls.key, optional ca.crt (roots). */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
  bundlePem?: string;
}

/** A CA ready to sign: everything per-SVID issuance needs, computed once. */
export interface LoadedCa {
  certificate: X509Certificate;
  /** The signing key; a KeyObject, whose inspection never shows key material. */
  key: KeyObject;
  keySpec: KeySpec;
  scheme: SignatureScheme;
  subjectDer: Buffer;
  subjectKeyId: Buffer;
  subject: string;
  /** Certificates between a leaf and a root (the CA itself when it is an intermediate), PEM; '' for a root CA. */
  chainPem: string;
  /** The roots workloads trust: the CA's root(s) plus extra roots, PEM, de-duplicated. */
  trustBundlePem: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the CA certificate, lowercase hex without colons: identifies "the current CA". */
  fingerprint: string;
}

const fingerprintOf = (cert: X509Certificate) => cert.fingerprint256.replace(/:/g, '').toLowerCase();
const selfSigned = (cert: X509Certificate) => cert.checkIssued(cert) && cert.verify(cert.publicKey);

/** A self-signed root for development and tests (the operator's production CA comes from a Secret). */
export async function createSelfSignedCa(opts: {
  trustDomain: string;
  key?: KeySpec;
  validitySeconds?: number;
  commonName?: string;
  now?: Date;
}): Promise<{ certPem: string; keyPem: string }> {
  validateTrustDomain(opts.trustDomain);
  const now = opts.now ?? new Date();
  const { privateKey, publicKey } = await generateKeyPair(opts.key ?? DEFAULT_KEY);
  const skid = keyIdentifier(publicKey);
  const subject = caSubject(opts.commonName ?? `svid-operator root for ${opts.trustDomain}`);
  const certPem = signCertificate(
    {
      serial: randomSerial(),
      scheme: signatureScheme(privateKey),
      issuer: subject,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + (opts.validitySeconds ?? 365 * 24 * 3600) * 1000),
      subject,
      spki: publicKey.export({ type: 'spki', format: 'der' }),
      extensions: caExtensions(skid, `spiffe://${opts.trustDomain}`),
    },
    privateKey,
  );
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

function checkCaCertificate(cert: X509Certificate, what: string): void {
  const p = profile(cert);
  if (p.isCa !== true) {
    throw new PkiError(
      'CaNotCa',
      `${what} is not a CA certificate (basicConstraints CA:TRUE is missing): use a CA certificate, not a leaf`,
    );
  }
  if (p.keyUsage !== undefined && (p.keyUsage & KeyUsageFlags.keyCertSign) === 0) {
    throw new PkiError(
      'CaNotCa',
      `${what} may not sign certificates (its keyUsage lacks keyCertSign): reissue the CA with keyCertSign`,
    );
  }
}

/** Orders `certs` from `start` up to a root in `roots`, or throws if the chain does not reach one. */
function verifyChain(
  start: X509Certificate,
  intermediates: X509Certificate[],
  roots: X509Certificate[],
): void {
  if (chainsTo(start, intermediates, roots)) return;
  throw new PkiError(
    'CaChainBroken',
    'the CA certificate does not chain to any root in ca.crt: put the CA (or its intermediates) in tls.crt and the root(s) that issued them in ca.crt',
  );
}

/**
 * Validates CA material and prepares it for signing. Every failure is a PkiError whose code and message
 * say what is wrong with the Secret and how to fix it.
 */
export async function loadCa(
  material: CaMaterial,
  opts: { now?: Date; extraRootsPem?: string } = {},
): Promise<LoadedCa> {
  const now = opts.now ?? new Date();
  const certs = parseCertificates(material.certPem, "the CA Secret's tls.crt", 'CaMissingCertificate');
  const certificate = certs[0] as X509Certificate;
  const key = parsePrivateKey(material.keyPem, "the CA Secret's tls.key", 'CaMissingKey');
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw new PkiError(
      'CaWeakKey',
      `the CA key is RSA-${key.asymmetricKeyDetails?.modulusLength}, which is too weak: use RSA 2048 bits or more, or ECDSA P-256`,
    );
  }
  const keySpec = describeKey(key);
  if (!keySpec) {
    throw new PkiError(
      'CaUnsupportedKey',
      `the CA key type (${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}) is not supported: use ECDSA P-256/P-384, Ed25519 or RSA 2048/3072/4096`,
    );
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new PkiError(
      'CaKeyMismatch',
      "the CA Secret's tls.key does not belong to the first certificate in tls.crt: put the CA certificate first, with its own key",
    );
  }
  checkCaCertificate(certificate, "the first certificate in the CA Secret's tls.crt");
  if (now < new Date(certificate.validFrom)) {
    throw new PkiError(
      'CaNotYetValid',
      `the CA certificate is not valid before ${new Date(certificate.validFrom).toISOString()}: check the clock or the certificate`,
    );
  }
  if (now >= new Date(certificate.validTo)) {
    throw new PkiError(
      'CaExpired',
      `the CA certificate expired at ${new Date(certificate.validTo).toISOString()}: replace the CA Secret with a valid CA`,
    );
  }

  const rest = certs.slice(1);
  const explicitRoots = material.bundlePem?.trim()
    ? parseCertificates(material.bundlePem, "the CA Secret's ca.crt", 'CaBadBundle')
    : [];
  // A root CA is its own root; an intermediate needs its roots in ca.crt.
  const roots = [...explicitRoots, ...[certificate, ...rest].filter(selfSigned)];
  if (roots.length === 0) {
    throw new PkiError(
      'CaMissingRoot',
      'the CA is an intermediate but the Secret has no root: add the root certificate(s) as ca.crt',
    );
  }
  const intermediates = rest.filter((c) => !selfSigned(c));
  verifyChain(certificate, intermediates, roots);
  for (const cert of intermediates) {
    if (now >= new Date(cert.validTo)) {
      throw new PkiError(
        'CaExpired',
        `an intermediate in tls.crt (${cert.subject.replace(/\n/g, ', ')}) expired at ${new Date(cert.validTo).toISOString()}`,
      );
    }
  }
  const extraRoots = opts.extraRootsPem?.trim()
    ? parseCertificates(opts.extraRootsPem, 'the extra trust roots', 'CaBadBundle')
    : [];
  const seen = new Set<string>();
  const bundle = [...roots, ...extraRoots].filter((c) => {
    const fp = fingerprintOf(c);
    if (seen.has(fp)) return false;
    seen.add(fp);
    return true;
  });

  return {
    certificate,
    key,
    keySpec,
    scheme: signatureScheme(key),
    subjectDer: rawSubject(certificate),
    subjectKeyId: profile(certificate).subjectKeyId ?? keyIdentifier(createPublicKey(key)),
    subject: certificate.subject.replace(/\n/g, ', '),
    // What a leaf needs to chain to a root: the signing CA itself when it is an intermediate, then the rest.
    chainPem: selfSigned(certificate) ? '' : [certificate, ...intermediates].map(pemOf).join(''),
    trustBundlePem: bundle.map(pemOf).join(''),
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
    fingerprint: fingerprintOf(certificate),
  };
}

export function describeCa(ca: LoadedCa): string {
  return `${ca.subject} (${formatKeySpec(ca.keySpec)}, expires ${ca.notAfter.toISOString()}, sha256 ${ca.fingerprint.slice(0, 16)}…)`;
}
