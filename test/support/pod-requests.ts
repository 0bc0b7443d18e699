// Key pairs and the two forms of proof of possession a PodCertificateRequest carries, made the way the
// kubelet makes them (pkg/kubelet/podcertificate): a stub PKCS#10 request signed by the key (1.36), or a
// PKIX public key with a signature over the pod UID (the deprecated pair, still accepted).
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, NULL, oid, sequence, tlv, unsignedInteger } from '../../src/pki/der.ts';

/** keyType values of a podCertificate projected volume. */
export type PodKeyType = 'ECDSAP256' | 'ECDSAP384' | 'ECDSAP521' | 'ED25519' | 'RSA3072' | 'RSA4096';

export function podKeyPair(type: PodKeyType | 'RSA2048' | 'SECP256K1'): {
  privateKey: KeyObject;
  publicKey: KeyObject;
} {
  switch (type) {
    case 'ECDSAP256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ECDSAP384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'ECDSAP521':
      return generateKeyPairSync('ec', { namedCurve: 'P-521' });
    case 'SECP256K1':
      return generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    case 'ED25519':
      return generateKeyPairSync('ed25519');
    case 'RSA2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'RSA3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 });
    case 'RSA4096':
      return generateKeyPairSync('rsa', { modulusLength: 4096 });
  }
}

/** An empty-subject PKCS#10 request signed by `privateKey`, DER, as the kubelet sends it. */
export function stubPkcs10(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const info = sequence(
    unsignedInteger(Buffer.from([0])),
    sequence(),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa0),
  );
  const type = privateKey.asymmetricKeyType;
  const [alg, digest] =
    type === 'ed25519'
      ? [sequence(oid('1.3.101.112')), null]
      : type === 'rsa'
        ? [sequence(oid('1.2.840.113549.1.1.11'), NULL), 'sha256']
        : [sequence(oid('1.2.840.10045.4.3.2')), 'sha256'];
  return sequence(info, alg, bitString(sign(digest, info, privateKey)));
}

/** The deprecated pkixPublicKey + proofOfPossession pair: a signature over the pod UID. */
export function pkixProof(
  privateKey: KeyObject,
  publicKey: KeyObject,
  podUid: string,
): {
  pkixPublicKey: string;
  proofOfPossession: string;
} {
  const data = Buffer.from(podUid);
  const type = privateKey.asymmetricKeyType;
  const signature =
    type === 'ed25519'
      ? sign(null, data, privateKey)
      : type === 'rsa'
        ? sign('sha256', data, { key: privateKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 })
        : sign('sha256', data, privateKey);
  return {
    pkixPublicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    proofOfPossession: signature.toString('base64'),
  };
}
