import { expect } from 'chai';
import {
  createSelfSignedCa,
  inspectSvid,
  issuedSvidFacts,
  issueSvid,
  loadCa,
  verifySvid,
  type KeySpec,
  type LoadedCa,
} from '../../../src/pki/index.ts';

describe('SVID facts', () => {
  let ca: LoadedCa;
  let other: LoadedCa;

  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    other = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
  });

  const keys: KeySpec[] = [
    { algorithm: 'ECDSA', size: 256 },
    { algorithm: 'ECDSA', size: 384 },
    { algorithm: 'Ed25519' },
    { algorithm: 'RSA', size: 2048 },
  ];

  it('states for a just-issued SVID exactly what parsing it finds', async () => {
    for (const key of keys) {
      for (const dnsNames of [[], ['payments'], ['b', 'a.prod.svc']]) {
        const svid = await issueSvid(ca, {
          spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
          dnsNames,
          durationSeconds: 3600,
          key,
        });
        expect(issuedSvidFacts(svid, dnsNames, key)).to.deep.equal(
          inspectSvid(svid.certChainPem, svid.keyPem, ca),
        );
      }
    }
  });

  it('finds what is wrong with an SVID that is not ours to trust', async () => {
    const svid = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b', durationSeconds: 600 });
    const second = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b', durationSeconds: 600 });
    expect(inspectSvid('junk', svid.keyPem, ca)).to.deep.equal({
      kind: 'corrupt',
      message: 'tls.crt holds no PEM certificate ("-----BEGIN CERTIFICATE-----" block)',
    });
    expect(inspectSvid(svid.certChainPem, 'junk', ca).kind).to.equal('corrupt');
    expect(inspectSvid(svid.certChainPem, second.keyPem, ca)).to.include({ keyMatches: false });
    expect(inspectSvid(svid.certChainPem, svid.keyPem, other)).to.include({
      issuedByCa: false,
      keyMatches: true,
    });
  });

  it('gives verifySvid the same decision as parsing, for every case', async () => {
    const expected = {
      spiffeId: 'spiffe://example.org/ns/a/sa/b',
      dnsNames: ['b'],
      key: { algorithm: 'ECDSA', size: 256 } as KeySpec,
      durationSeconds: 600,
      renewBeforeSeconds: 200,
      uid: 'u',
    };
    const svid = await issueSvid(ca, { ...expected });
    const second = await issueSvid(ca, { ...expected });
    const secrets = [
      { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem },
      { certChainPem: svid.certChainPem, keyPem: second.keyPem, bundlePem: svid.bundlePem },
      { certChainPem: 'junk', keyPem: svid.keyPem, bundlePem: svid.bundlePem },
      { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: 'junk' },
      { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: other.trustBundlePem },
    ];
    const specs = [expected, { ...expected, dnsNames: ['c'] }, { ...expected, spiffeId: 'spiffe://x/y' }];
    for (const c of [ca, other]) {
      for (const s of secrets) {
        for (const e of specs) {
          const facts = inspectSvid(s.certChainPem, s.keyPem, c);
          expect(verifySvid(s, e, c, { facts })).to.deep.equal(verifySvid(s, e, c));
        }
      }
    }
  });
});
