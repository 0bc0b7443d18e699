import type { X509Certificate } from 'node:crypto';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { buildPath, chainsTo } from '@svid-operator/mtls/pem';
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
export { buildPath, chainsTo };

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
  /** What was wrong but could be worked around (e.g. a stray certificate in tls.crt): for the log. */
  warnings: string[];
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

// node:crypto gives `undefined` for an empty subject.
const nameOf = (cert: X509Certificate) =>
  (cert.subject as string | undefined)?.replace(/\n/g, ', ') || '(empty subject)';

/** CA:TRUE and, when keyUsage is present, keyCertSign: a certificate that may sign certificates. */
function caProblem(cert: X509Certificate): string | undefined {
  const p = profile(cert);
  if (p.isCa !== true) return 'is not a CA certificate (basicConstraints CA:TRUE is missing)';
  if (p.keyUsage !== undefined && (p.keyUsage & KeyUsageFlags.keyCertSign) === 0) {
    return 'may not sign certificates (its keyUsage lacks keyCertSign)';
  }
  return undefined;
}

function checkCaCertificate(cert: X509Certificate, what: string, fix: string, code = 'CaNotCa'): void {
  const problem = caProblem(cert);
  if (problem) throw new PkiError(code, `${what} ${problem}: ${fix}`);
}

function checkValidity(cert: X509Certificate, what: string, now: Date, fix: string, code?: string): void {
  if (now < new Date(cert.validFrom)) {
    throw new PkiError(
      code ?? 'CaNotYetValid',
      `${what} is not valid before ${new Date(cert.validFrom).toISOString()}: check the clock or the certificate`,
    );
  }
  if (now >= new Date(cert.validTo)) {
    throw new PkiError(
      code ?? 'CaExpired',
      `${what} expired at ${new Date(cert.validTo).toISOString()}: ${fix}`,
    );
  }
}

/**
 * X.509-SVID §3.2: a signing certificate SHOULD be an SVID; if it has a SPIFFE ID, that ID "MUST NOT have a
 * path component, and SHOULD reside in the trust domain of any leaf SVIDs it issues". The CA that signs the
 * leaves must carry `spiffe://<trust domain>` exactly (when it carries any); the certificates above it only
 * must not have a path (they may certify other trust domains too).
 */
function checkSigningSpiffeId(cert: X509Certificate, what: string, trustDomain?: string): void {
  const ids = profile(cert).uris.filter((u) => u.toLowerCase().startsWith('spiffe://'));
  if (ids.length > 1) {
    throw new PkiError(
      'CaBadSpiffeId',
      `${what} has ${ids.length} SPIFFE IDs in its URI SAN (${ids.join(', ')}): a signing certificate has at most one, spiffe://<trust domain>`,
    );
  }
  const id = ids[0];
  if (id === undefined) return;
  const rest = id.slice('spiffe://'.length);
  if (rest.includes('/')) {
    throw new PkiError(
      'CaBadSpiffeId',
      `${what} has the SPIFFE ID ${id}, which has a path; a signing certificate's SPIFFE ID must not have a path (X.509-SVID §3.2): reissue it with spiffe://<trust domain>`,
    );
  }
  if (trustDomain !== undefined && rest !== trustDomain) {
    throw new PkiError(
      'CaBadSpiffeId',
      `${what} has the SPIFFE ID ${id}, but the operator issues for --trust-domain ${trustDomain}: use a CA of spiffe://${trustDomain}, or set --trust-domain to the CA's trust domain`,
    );
  }
}

/**
 * Validates CA material and prepares it for signing. Every failure is a PkiError whose code and message
 * say what is wrong with the Secret and how to fix it. With `trustDomain`, a SPIFFE ID on the CA must be
 * that trust domain's.
 */
export async function loadCa(
  material: CaMaterial,
  opts: { now?: Date; extraRootsPem?: string; trustDomain?: string } = {},
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
  const signingWhat = "the first certificate in the CA Secret's tls.crt";
  checkCaCertificate(
    certificate,
    signingWhat,
    'use a CA certificate, not a leaf; reissue the CA with keyCertSign',
  );
  checkValidity(certificate, 'the CA certificate', now, 'replace the CA Secret with a valid CA');
  checkSigningSpiffeId(certificate, 'the CA certificate', opts.trustDomain);

  // Roots: every certificate in ca.crt (each must be a CA that is valid now: it goes into every bundle),
  // and a self-signed certificate in tls.crt (a root CA is its own root; some tools append the root).
  const explicitRoots = material.bundlePem?.trim()
    ? parseCertificates(material.bundlePem, "the CA Secret's ca.crt", 'CaBadBundle')
    : [];
  for (const root of explicitRoots) {
    const what = `the certificate ${nameOf(root)} in the CA Secret's ca.crt`;
    const fix = 'remove it from ca.crt (ca.crt holds the root CA certificates that workloads trust)';
    checkCaCertificate(root, what, fix, 'CaBadBundle');
    checkValidity(root, what, now, fix, 'CaBadBundle');
  }
  const rest = certs.slice(1);
  const tlsRoots = [certificate, ...rest].filter(selfSigned);
  const roots = [...explicitRoots, ...tlsRoots];
  if (roots.length === 0) {
    throw new PkiError(
      'CaMissingRoot',
      'the CA is an intermediate but the Secret has no root: add the root certificate(s) as ca.crt',
    );
  }
  const path = selfSigned(certificate)
    ? { intermediates: [], root: certificate }
    : buildPath(
        certificate,
        rest.filter((c) => !selfSigned(c)),
        roots,
      );
  if (!path) {
    throw new PkiError(
      'CaChainBroken',
      'the CA certificate does not chain to any root in ca.crt: put the CA (or its intermediates) in tls.crt and the root(s) that issued them in ca.crt',
    );
  }
  for (const cert of path.intermediates) {
    const what = `the intermediate ${nameOf(cert)} in the CA Secret's tls.crt`;
    const fix = 'replace it with a valid intermediate CA';
    checkCaCertificate(cert, what, 'reissue it as a CA with keyCertSign');
    checkValidity(cert, what, now, fix);
    checkSigningSpiffeId(cert, what);
  }
  if (path.root !== certificate && !explicitRoots.includes(path.root)) {
    const what = `the root ${nameOf(path.root)} in the CA Secret's tls.crt`;
    checkCaCertificate(path.root, what, 'use a root CA certificate');
    checkValidity(path.root, what, now, 'replace the CA with one whose root is valid');
  }
  // tls.crt certificates on no path from the CA to its root would go out in every SVID's chain (and a
  // self-signed one into every trust bundle): they are left out, and said so.
  const onPath = new Set([path.root, ...path.intermediates].map(fingerprintOf));
  const stray = rest.filter((c) => !onPath.has(fingerprintOf(c)));
  const warnings = stray.map(
    (c) =>
      `ignored the certificate ${nameOf(c)} in the CA Secret's tls.crt: it is not on the path from the CA to its root; remove it`,
  );
  const anchors = explicitRoots.includes(path.root) || path.root === certificate ? [] : [path.root];
  const extraRoots = opts.extraRootsPem?.trim()
    ? parseCertificates(opts.extraRootsPem, 'the extra trust roots', 'CaBadBundle')
    : [];
  const seen = new Set<string>();
  const bundle = [
    ...(selfSigned(certificate) ? [certificate] : []),
    ...explicitRoots,
    ...anchors,
    ...extraRoots,
  ].filter((c) => {
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
    subject: nameOf(certificate),
    // What a leaf needs to chain to a root, in path order: the signing CA itself when it is an
    // intermediate, then each certificate above it up to (not including) the root.
    chainPem: selfSigned(certificate) ? '' : [certificate, ...path.intermediates].map(pemOf).join(''),
    trustBundlePem: bundle.map(pemOf).join(''),
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
    fingerprint: fingerprintOf(certificate),
    warnings,
  };
}

export function describeCa(ca: LoadedCa): string {
  return `${ca.subject} (${formatKeySpec(ca.keySpec)}, expires ${ca.notAfter.toISOString()}, sha256 ${ca.fingerprint.slice(0, 16)}…)`;
}
