import { expect } from 'chai';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { encodeEcKey } from '../../../src/pki/ec-encoding.ts';

describe('EC key encoding', () => {
  for (const namedCurve of ['P-256', 'P-384']) {
    it(`encodes ${namedCurve} SPKI and PKCS#8 byte-for-byte as OpenSSL does`, () => {
      for (let i = 0; i < 50; i++) {
        const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
        const { spki, pkcs8 } = encodeEcKey(privateKey);
        expect(spki.equals(publicKey.export({ type: 'spki', format: 'der' }))).to.equal(true);
        expect(pkcs8.equals(privateKey.export({ type: 'pkcs8', format: 'der' }))).to.equal(true);
        const roundTrip = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
        expect(createPublicKey(roundTrip).export({ format: 'jwk' })).to.deep.equal(
          publicKey.export({ format: 'jwk' }),
        );
      }
    });
  }

  it('refuses keys that are not P-256 or P-384', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expect(() => encodeEcKey(privateKey)).to.throw(/unsupported EC key/);
  });
});

describe('DER encoding', () => {
  it('encodes short, one-byte and two-byte lengths', async () => {
    const { tlv } = await import('../../../src/pki/der.ts');
    expect([...tlv(0x04, Buffer.alloc(5))].slice(0, 2)).to.deep.equal([0x04, 5]);
    expect([...tlv(0x04, Buffer.alloc(200))].slice(0, 3)).to.deep.equal([0x04, 0x81, 200]);
    expect([...tlv(0x30, Buffer.alloc(300), Buffer.alloc(100))].slice(0, 4)).to.deep.equal([
      0x30, 0x82, 0x01, 0x90,
    ]);
    expect(tlv(0x30, Buffer.alloc(300), Buffer.alloc(100))).to.have.length(404);
  });
});
