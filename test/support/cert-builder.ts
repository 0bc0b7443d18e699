// Certificates with chosen flaws (not a CA, no keyCertSign, expired, a foreign URI SAN) for the CA-loading
// tests, built with the project's DER writer and signed with node:crypto, so a test names the one property
// it is about instead of scripting openssl for each variant.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { bitString, contextPrimitive, octetString, oid, sequence, TRUE } from '../../src/pki/der.ts';
import { generateKeyPair } from '../../src/pki/keys.ts';
import { caSubject, randomSerial, signatureScheme, signCertificate } from '../../src/pki/signer.ts';
import { keyIdentifier, rawSubject } from '../../src/pki/x509.ts';

export interface BuiltCert {
  cert: X509Certificate;
  certPem: string;
  key: KeyObject;
  keyPem: string;
}

export interface CertOptions {
  commonName: string;
  /** Signs the certificate; self-signed when absent. */
  issuer?: BuiltCert;
  /** basicConstraints cA (default true). */
  ca?: boolean;
  /** keyUsage: 'ca' = keyCertSign|cRLSign (default), 'sign' = digitalSignature only, 'none' = no extension. */
  keyUsage?: 'ca' | 'sign' | 'none';
  notBefore?: Date;
  notAfter?: Date;
  /** URI SANs (none by default). */
  uris?: string[];
}

const ext = (id: string, critical: boolean, value: Buffer) =>
  critical ? sequence(oid(id), TRUE, octetString(value)) : sequence(oid(id), octetString(value));

export async function buildCert(o: CertOptions): Promise<BuiltCert> {
  const { privateKey, publicKey } = await generateKeyPair({ algorithm: 'ECDSA', size: 256 });
  const now = Date.now();
  const skid = keyIdentifier(publicKey);
  const signer = o.issuer?.key ?? privateKey;
  const subject = caSubject(o.commonName);
  const extensions = [
    ext('2.5.29.19', true, o.ca === false ? sequence() : sequence(TRUE)),
    ext('2.5.29.14', false, octetString(skid)),
    ext(
      '2.5.29.35',
      false,
      sequence(contextPrimitive(0, o.issuer ? keyIdentifier(o.issuer.cert.publicKey) : skid)),
    ),
  ];
  if ((o.keyUsage ?? 'ca') === 'ca')
    extensions.push(ext('2.5.29.15', true, bitString(Buffer.from([0x06]), 1)));
  if (o.keyUsage === 'sign') extensions.push(ext('2.5.29.15', true, bitString(Buffer.from([0x80]), 7)));
  if (o.uris?.length) {
    extensions.push(
      ext('2.5.29.17', false, sequence(...o.uris.map((u) => contextPrimitive(6, Buffer.from(u, 'ascii'))))),
    );
  }
  const certPem = signCertificate(
    {
      serial: randomSerial(),
      scheme: signatureScheme(signer),
      issuer: o.issuer ? rawSubject(o.issuer.cert) : subject,
      notBefore: o.notBefore ?? new Date(now - 60_000),
      notAfter: o.notAfter ?? new Date(now + 24 * 3600_000),
      subject,
      spki: publicKey.export({ type: 'spki', format: 'der' }),
      extensions,
    },
    signer,
  );
  return {
    cert: new X509Certificate(certPem),
    certPem,
    key: privateKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
