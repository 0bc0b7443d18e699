import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { issueSvid, loadCa, PkiError, type CaMaterial } from '../../../src/pki/index.ts';
import { pemBlocks } from '../../../src/pki/x509.ts';
import { buildCert, type BuiltCert } from '../../support/cert-builder.ts';

const TD = 'example.org';
const HOUR = 3600_000;

async function refusal(material: CaMaterial, opts: Parameters<typeof loadCa>[1] = {}): Promise<PkiError> {
  try {
    await loadCa(material, { trustDomain: TD, ...opts });
  } catch (err) {
    expect(err).to.be.instanceOf(PkiError);
    return err as PkiError;
  }
  return expect.fail('loadCa accepted the material');
}

const subjects = (pem: string) =>
  pemBlocks(pem).map((b) => (new X509Certificate(b.der).subject ?? '').replace(/\n/g, ', '));

/** root → int1 → signing, each a proper SPIFFE signing certificate unless a test says otherwise. */
async function chain(): Promise<{ root: BuiltCert; int1: BuiltCert; signing: BuiltCert }> {
  const root = await buildCert({ commonName: 'root', uris: [`spiffe://${TD}`] });
  const int1 = await buildCert({ commonName: 'int1', issuer: root, uris: [`spiffe://${TD}`] });
  const signing = await buildCert({ commonName: 'signing', issuer: int1, uris: [`spiffe://${TD}`] });
  return { root, int1, signing };
}

describe('CA loading: chain conformance', () => {
  it('builds tls.crt chain in path order whatever order tls.crt lists them, dropping strays', async () => {
    const { root, int1, signing } = await chain();
    const stray = await buildCert({ commonName: 'stray', issuer: root });
    const straySelfSigned = await buildCert({ commonName: 'stray-root' });
    for (const rest of [
      [int1, stray],
      [stray, int1],
      [straySelfSigned, int1, root],
    ]) {
      const ca = await loadCa(
        {
          certPem: [signing, ...rest].map((c) => c.certPem).join(''),
          keyPem: signing.keyPem,
          bundlePem: root.certPem,
        },
        { trustDomain: TD },
      );
      expect(subjects(ca.chainPem)).to.deep.equal([
        'O=svid-operator, CN=signing',
        'O=svid-operator, CN=int1',
      ]);
      // Only the root the path reaches (from ca.crt) is trusted; a stray self-signed certificate is not.
      expect(subjects(ca.trustBundlePem)).to.deep.equal(['O=svid-operator, CN=root']);
      expect(ca.warnings.join('\n')).to.match(/ignored .*CN=stray/);
      const svid = await issueSvid(ca, { spiffeId: `spiffe://${TD}/ns/a/sa/b`, durationSeconds: 600 });
      expect(subjects(svid.certChainPem).slice(1)).to.deep.equal([
        'O=svid-operator, CN=signing',
        'O=svid-operator, CN=int1',
      ]);
    }
  });

  it('reports no warnings for a clean chain', async () => {
    const { root, int1, signing } = await chain();
    const ca = await loadCa(
      { certPem: signing.certPem + int1.certPem, keyPem: signing.keyPem, bundlePem: root.certPem },
      { trustDomain: TD },
    );
    expect(ca.warnings).to.deep.equal([]);
  });

  // Each row: what is wrong with one certificate of the path, the code and the words that must explain it.
  const intermediateCases: {
    name: string;
    int1: (root: BuiltCert) => Promise<BuiltCert>;
    code: string;
    text: RegExp;
  }[] = [
    {
      name: 'an intermediate that is not a CA',
      int1: (root) => buildCert({ commonName: 'int1', issuer: root, ca: false, keyUsage: 'none' }),
      code: 'CaNotCa',
      text: /intermediate .*CN=int1.* is not a CA certificate \(basicConstraints CA:TRUE is missing\)/,
    },
    {
      name: 'an intermediate without keyCertSign',
      int1: (root) => buildCert({ commonName: 'int1', issuer: root, keyUsage: 'sign' }),
      code: 'CaNotCa',
      text: /intermediate .*CN=int1.* may not sign certificates \(its keyUsage lacks keyCertSign\)/,
    },
    {
      name: 'an expired intermediate',
      int1: (root) =>
        buildCert({
          commonName: 'int1',
          issuer: root,
          notBefore: new Date(Date.now() - 3 * HOUR),
          notAfter: new Date(Date.now() - HOUR),
        }),
      code: 'CaExpired',
      text: /intermediate .*CN=int1.* expired at/,
    },
    {
      name: 'an intermediate not yet valid',
      int1: (root) => buildCert({ commonName: 'int1', issuer: root, notBefore: new Date(Date.now() + HOUR) }),
      code: 'CaNotYetValid',
      text: /intermediate .*CN=int1.* is not valid before/,
    },
    {
      name: 'an intermediate whose SPIFFE ID has a path',
      int1: (root) => buildCert({ commonName: 'int1', issuer: root, uris: [`spiffe://${TD}/ca`] }),
      code: 'CaBadSpiffeId',
      text: /CN=int1.*spiffe:\/\/example\.org\/ca.*must not have a path/,
    },
  ];
  for (const c of intermediateCases) {
    it(`refuses ${c.name}`, async () => {
      const root = await buildCert({ commonName: 'root' });
      const int1 = await c.int1(root);
      const signing = await buildCert({ commonName: 'signing', issuer: int1, uris: [`spiffe://${TD}`] });
      const err = await refusal({
        certPem: signing.certPem + int1.certPem,
        keyPem: signing.keyPem,
        bundlePem: root.certPem,
      });
      expect(err.code).to.equal(c.code);
      expect(err.message).to.match(c.text);
    });
  }

  const rootCases: { name: string; root: () => Promise<BuiltCert>; code: string; text: RegExp }[] = [
    {
      name: 'a "root" in ca.crt that is not a CA',
      root: () => buildCert({ commonName: 'leafish', ca: false, keyUsage: 'sign' }),
      code: 'CaBadBundle',
      text: /CN=leafish in the CA Secret's ca\.crt is not a CA certificate/,
    },
    {
      name: 'an expired root in ca.crt',
      root: () =>
        buildCert({
          commonName: 'old-root',
          notBefore: new Date(Date.now() - 3 * HOUR),
          notAfter: new Date(Date.now() - HOUR),
        }),
      code: 'CaBadBundle',
      text: /CN=old-root in the CA Secret's ca\.crt expired at .*remove it/,
    },
    {
      name: 'a root in ca.crt without keyCertSign',
      root: () => buildCert({ commonName: 'no-sign', keyUsage: 'sign' }),
      code: 'CaBadBundle',
      text: /CN=no-sign in the CA Secret's ca\.crt may not sign certificates/,
    },
  ];
  for (const c of rootCases) {
    it(`refuses ${c.name}, even beside the right root`, async () => {
      const { root, int1, signing } = await chain();
      const bad = await c.root();
      const err = await refusal({
        certPem: signing.certPem + int1.certPem,
        keyPem: signing.keyPem,
        bundlePem: root.certPem + bad.certPem,
      });
      expect(err.code).to.equal(c.code);
      expect(err.message).to.match(c.text);
    });
  }

  const uriCases: { name: string; uris: string[]; text: RegExp }[] = [
    {
      name: 'another trust domain',
      uris: ['spiffe://other.org'],
      text: /spiffe:\/\/other\.org.*--trust-domain example\.org/,
    },
    { name: 'a path', uris: [`spiffe://${TD}/ns/x`], text: /must not have a path/ },
    { name: 'two SPIFFE IDs', uris: [`spiffe://${TD}`, 'spiffe://other.org'], text: /2 SPIFFE IDs/ },
  ];
  for (const c of uriCases) {
    it(`refuses a signing CA whose URI SAN has ${c.name}`, async () => {
      const signing = await buildCert({ commonName: 'signing', uris: c.uris });
      const err = await refusal({ certPem: signing.certPem, keyPem: signing.keyPem });
      expect(err.code).to.equal('CaBadSpiffeId');
      expect(err.message).to.match(c.text);
    });
  }

  it('accepts a signing CA without a URI SAN, and one with spiffe://<trust domain>', async () => {
    for (const uris of [[], [`spiffe://${TD}`]]) {
      const signing = await buildCert({ commonName: 'signing', uris });
      const ca = await loadCa({ certPem: signing.certPem, keyPem: signing.keyPem }, { trustDomain: TD });
      expect(ca.chainPem).to.equal('');
    }
  });
});
