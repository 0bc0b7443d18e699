// Self-signed CA certificates with hand-made extensions, for tests of extension contents that are not
// valid DER (Node's X509Certificate accepts them; only the profile checks read the contents).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { oid, octetString, sequence, TRUE } from '../../src/pki/der.ts';
import { caSubject, randomSerial, signatureScheme, signCertificate } from '../../src/pki/signer.ts';

/** A critical extension with this OID and raw (possibly invalid) contents. */
export const rawExtension = (id: string, contents: Buffer): Buffer =>
  sequence(oid(id), TRUE, octetString(contents));

export const GOOD_BASIC_CONSTRAINTS_CA = rawExtension('2.5.29.19', sequence(TRUE));
/** keyCertSign | cRLSign. */
export const GOOD_KEY_USAGE_CA = rawExtension('2.5.29.15', Buffer.from([0x03, 0x02, 0x01, 0x06]));
/** basicConstraints whose SEQUENCE is cut short. */
export const TRUNCATED_BASIC_CONSTRAINTS = rawExtension('2.5.29.19', Buffer.from([0x30, 0x03, 0x01, 0x01]));

/** A self-signed CA certificate (PEM) for `keyPem` with exactly these extensions, valid for an hour. */
export function caWithExtensions(keyPem: string, extensions: Buffer[]): string {
  const key = createPrivateKey(keyPem);
  const subject = caSubject('broken extension CA');
  const now = Date.now();
  return signCertificate(
    {
      serial: randomSerial(),
      scheme: signatureScheme(key),
      issuer: subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3600_000),
      subject,
      spki: createPublicKey(key).export({ type: 'spki', format: 'der' }),
      extensions,
    },
    key,
  );
}
