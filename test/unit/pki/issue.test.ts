import { expect } from 'chai';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  createSelfSignedCa,
  issueSvid,
  loadCa,
  profile,
  svidConformance,
  subjectCheck,
  type KeySpec,
  type LoadedCa,
} from '../../../src/pki/index.ts';
import { rawSubject } from '../../../src/pki/x509.ts';

const ID = 'spiffe://example.org/ns/prod/sa/payments';
const KEYS: KeySpec[] = [
  { algorithm: 'ECDSA', size: 256 },
  { algorithm: 'ECDSA', size: 384 },
  { algorithm: 'Ed25519' },
  { algorithm: 'RSA', size: 2048 },
];

describe('SVID issuance', () => {
  let ca: LoadedCa;
  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
  });

  for (const key of KEYS) {
    it(`issues a conformant X.509-SVID with a ${key.algorithm}${'size' in key ? `-${key.size}` : ''} key`, async () => {
      const svid = await issueSvid(ca, {
        spiffeId: ID,
        dnsNames: ['payments', 'payments.prod.svc'],
        durationSeconds: 3600,
        key,
      });
      const leaf = new X509Certificate(svid.certChainPem);
      for (const check of svidConformance(leaf))
        expect(check.ok, `${check.name}: ${check.detail}`).to.equal(true);
      const p = profile(leaf);
      expect(p.uris).to.deep.equal([ID]);
      expect(p.dnsNames).to.deep.equal(['payments', 'payments.prod.svc']);
      expect(p.isCa).to.equal(false);
      expect(p.basicConstraintsCritical).to.equal(true);
      // digitalSignature = 1, keyEncipherment = 4: the latter for RSA only.
      expect(p.keyUsage).to.equal(key.algorithm === 'RSA' ? 5 : 1);
      expect(p.subjectKeyId).to.have.length(20);
      expect(leaf.checkIssued(ca.certificate) && leaf.verify(ca.certificate.publicKey)).to.equal(true);
      expect(leaf.checkPrivateKey(createPrivateKey(svid.keyPem))).to.equal(true);
      expect(svid.keyPem).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(svid.bundlePem).to.equal(ca.trustBundlePem);
      expect(svid.serialNumber).to.equal(leaf.serialNumber.toLowerCase());
    });
  }

  it('leaves the subject empty and marks the URI SAN critical (X.509-SVID §3.1, RFC 5280 §4.1.2.6)', async () => {
    // Two identities must never share a subject name under one CA; an empty subject has no name to share.
    for (const spiffeId of [ID, 'spiffe://example.org/ns/prod/sa/other']) {
      const leaf = new X509Certificate((await issueSvid(ca, { spiffeId, durationSeconds: 60 })).certChainPem);
      // node:crypto shows an empty subject as undefined; the DER is an empty SEQUENCE.
      expect(rawSubject(leaf).toString('hex')).to.equal('3000');
      expect(profile(leaf).subjectAltNameCritical).to.equal(true);
    }
  });

  it('flags a leaf with an empty subject and a non-critical SAN as not conformant', () => {
    const check = (subject: string, critical: boolean) =>
      subjectCheck({ subject, subjectAltNameCritical: critical });
    expect(check('', true).ok).to.equal(true);
    expect(check('O=x', false).ok).to.equal(true);
    expect(check('', false)).to.deep.include({ ok: false, detail: 'empty subject, SAN not critical' });
  });

  it('uses a fresh key and a random serial of at least 64 bits every time', async () => {
    const seen = new Set<string>();
    const keys = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const svid = await issueSvid(ca, { spiffeId: ID, durationSeconds: 60 });
      seen.add(svid.serialNumber);
      keys.add(svid.keyPem);
      expect(BigInt(`0x${svid.serialNumber}`).toString(2).length).to.be.at.least(64);
    }
    expect(seen.size).to.equal(20);
    expect(keys.size).to.equal(20);
  });

  it('backdates notBefore for clock skew and sets notAfter to the requested duration', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const caPem = await createSelfSignedCa({
      trustDomain: 'example.org',
      now: new Date('2029-12-01T00:00:00Z'),
    });
    const future = await loadCa(caPem, { now });
    const svid = await issueSvid(future, { spiffeId: ID, durationSeconds: 1200, now });
    expect(svid.notBefore.toISOString()).to.equal('2029-12-31T23:59:00.000Z');
    expect(svid.notAfter.toISOString()).to.equal('2030-01-01T00:20:00.000Z');
  });

  it('refuses an invalid SPIFFE ID and a non-positive duration', async () => {
    await issueSvid(ca, { spiffeId: 'spiffe://Example.org/x', durationSeconds: 60 }).then(
      () => expect.fail('accepted'),
      (err: Error) => expect(err.message).to.contain('only lowercase letters'),
    );
    await issueSvid(ca, { spiffeId: ID, durationSeconds: 0 }).then(
      () => expect.fail('accepted'),
      (err: Error) => expect(err.message).to.contain('positive number of seconds'),
    );
  });
});
