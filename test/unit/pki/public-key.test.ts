import { expect } from 'chai';
import fc from 'fast-check';
import { X509Certificate } from 'node:crypto';
import {
  acceptPublicKey,
  createSelfSignedCa,
  loadCa,
  PkiError,
  profile,
  signSvidForPublicKey,
  spkiFromPkcs10,
  svidConformance,
  type LoadedCa,
} from '../../../src/pki/index.ts';
import { podKeyPair, stubPkcs10, type PodKeyType } from '../../support/pod-requests.ts';

const ID = 'spiffe://example.org/ns/prod/sa/payments';

function pkiError(fn: () => unknown): PkiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PkiError) return err;
    throw err;
  }
  throw new Error('expected a PkiError');
}

describe('signing an X.509-SVID for a supplied public key', () => {
  let ca: LoadedCa;
  let now = new Date();
  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    now = new Date(Date.now() + 60_000);
  });

  const accepted: PodKeyType[] = ['ECDSAP256', 'ECDSAP384', 'ED25519', 'RSA3072'];
  for (const type of accepted) {
    it(`signs a conformant SVID for a ${type} key, read from a stub PKCS#10 request`, () => {
      const { privateKey, publicKey } = podKeyPair(type);
      const spki = spkiFromPkcs10(stubPkcs10(privateKey, publicKey));
      const signed = signSvidForPublicKey(ca, {
        spiffeId: ID,
        spki,
        notBefore: new Date(now.getTime() - 60_000),
        notAfter: new Date(now.getTime() + 3600_000),
      });
      const leaf = new X509Certificate(signed.certChainPem);
      for (const check of svidConformance(leaf))
        expect(check.ok, `${check.name}: ${check.detail}`).to.equal(true);
      expect(profile(leaf).uris).to.deep.equal([ID]);
      expect(leaf.checkPrivateKey(privateKey)).to.equal(true);
      expect(leaf.verify(ca.certificate.publicKey)).to.equal(true);
      expect(new Date(leaf.validFromDate).getTime()).to.equal(signed.notBefore.getTime());
      expect(new Date(leaf.validToDate).getTime()).to.equal(signed.notAfter.getTime());
      expect(signed.notBefore.getMilliseconds()).to.equal(0);
    });
  }

  const refused: { type: 'ECDSAP521' | 'RSA2048' | 'SECP256K1'; code: string; says: RegExp }[] = [
    { type: 'ECDSAP521', code: 'UnsupportedKey', says: /secp521r1.*ECDSAP256, ECDSAP384/ },
    { type: 'RSA2048', code: 'UnsupportedKey', says: /RSA-2048 keys are not accepted.*RSA3072/ },
    { type: 'SECP256K1', code: 'UnsupportedKey', says: /secp256k1/ },
  ];
  for (const { type, code, says } of refused) {
    it(`refuses a ${type} key with ${code} and what keyType to use`, () => {
      const { publicKey } = podKeyPair(type);
      const err = pkiError(() => acceptPublicKey(publicKey.export({ type: 'spki', format: 'der' })));
      expect(err.code).to.equal(code);
      expect(err.message).to.match(says);
    });
  }

  it('refuses an X25519 key (a key-agreement key, not a signing key)', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { publicKey } = generateKeyPairSync('x25519');
    const err = pkiError(() => acceptPublicKey(publicKey.export({ type: 'spki', format: 'der' })));
    expect(err.code).to.equal('UnsupportedKey');
    expect(err.message).to.match(/x25519/);
  });

  const bad: { name: string; der: Buffer; says: RegExp }[] = [
    { name: 'empty', der: Buffer.alloc(0), says: /0 bytes/ },
    { name: 'garbage', der: Buffer.from('not a key at all'), says: /not a DER SubjectPublicKeyInfo/ },
    { name: 'oversize', der: Buffer.alloc(10 * 1024 + 1, 0x30), says: /10241 bytes/ },
  ];
  for (const { name, der, says } of bad) {
    it(`refuses a public key that is ${name}`, () => {
      const err = pkiError(() => acceptPublicKey(der));
      expect(err.code).to.equal('BadPublicKey');
      expect(err.message).to.match(says);
    });
  }

  it('reads the key of a PKCS#10 request and refuses truncated or malformed ones', () => {
    const { privateKey, publicKey } = podKeyPair('ECDSAP256');
    const csr = stubPkcs10(privateKey, publicKey);
    expect(spkiFromPkcs10(csr).equals(publicKey.export({ type: 'spki', format: 'der' }))).to.equal(true);
    for (let cut = 0; cut < csr.length; cut += 7) {
      const err = pkiError(() => acceptPublicKey(spkiFromPkcs10(csr.subarray(0, cut))));
      expect(err.code, `cut at ${cut}`).to.be.oneOf(['BadRequest', 'BadPublicKey']);
    }
    const err = pkiError(() => spkiFromPkcs10(Buffer.concat([csr, Buffer.from([0])])));
    expect(err.message).to.match(/not one DER SEQUENCE/);
  });

  it('never throws anything but a PkiError for arbitrary bytes as a PKCS#10 request or key', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const buf = Buffer.from(bytes);
        for (const f of [() => acceptPublicKey(spkiFromPkcs10(buf)), () => acceptPublicKey(buf)]) {
          try {
            f();
          } catch (err) {
            if (!(err instanceof PkiError)) throw err;
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a validity the CA does not cover, saying to rotate the CA', () => {
    const { publicKey } = podKeyPair('ED25519');
    const err = pkiError(() =>
      signSvidForPublicKey(ca, {
        spiffeId: ID,
        spki: publicKey.export({ type: 'spki', format: 'der' }),
        notBefore: now,
        notAfter: new Date(ca.notAfter.getTime() + 3600_000),
      }),
    );
    expect(err.code).to.equal('CaValidityTooShort');
    expect(err.message).to.match(/rotate the CA/);
  });
});
