import { expect } from 'chai';
import {
  createSelfSignedCa,
  issueSvid,
  loadCa,
  verifySvid,
  type ExpectedSvid,
  type IssuedSvid,
  type LoadedCa,
} from '../../../src/pki/index.ts';
import { renewalTime } from '../../../src/renewal/index.ts';

const expected: ExpectedSvid = {
  spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
  dnsNames: ['payments'],
  key: { algorithm: 'ECDSA', size: 256 },
  durationSeconds: 3600,
  renewBeforeSeconds: 1200,
  uid: '6f1c2a9e-0000-4000-8000-000000000001',
};

describe('verification of an existing SVID', () => {
  let ca: LoadedCa;
  let svid: IssuedSvid;
  let secret: { certChainPem: string; keyPem: string; bundlePem: string };

  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    svid = await issueSvid(ca, {
      spiffeId: expected.spiffeId,
      dnsNames: expected.dnsNames,
      durationSeconds: 3600,
    });
    secret = { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem };
  });

  it('keeps a valid SVID and returns its renewal time', () => {
    const decision = verifySvid(secret, expected, ca);
    expect(decision.action).to.equal('keep');
    if (decision.action !== 'keep') return;
    expect(decision.serialNumber).to.equal(svid.serialNumber);
    expect(decision.renewalTime.getTime()).to.equal(renewalTime(svid.notAfter, 1200, expected.uid).getTime());
  });

  const reason = (
    s: Parameters<typeof verifySvid>[0],
    e: ExpectedSvid = expected,
    c?: LoadedCa,
    now?: Date,
  ) => {
    const d = verifySvid(s, e, c ?? ca, { now });
    return d.action === 'issue' ? d.reason : 'keep';
  };

  it('reissues when a file is missing or corrupt', () => {
    expect(reason({})).to.equal('Missing');
    expect(reason({ ...secret, keyPem: '' })).to.equal('Missing');
    expect(reason({ ...secret, certChainPem: 'not pem' })).to.equal('Corrupt');
    expect(
      reason({ ...secret, keyPem: secret.keyPem.slice(0, 80) + '\n-----END PRIVATE KEY-----\n' }),
    ).to.equal('Corrupt');
    expect(reason({ ...secret, bundlePem: 'x' })).to.equal('Corrupt');
  });

  it('reissues when tls.key was swapped for another key', async () => {
    const other = await issueSvid(ca, {
      spiffeId: expected.spiffeId,
      dnsNames: expected.dnsNames,
      durationSeconds: 3600,
    });
    expect(reason({ ...secret, keyPem: other.keyPem })).to.equal('KeyMismatch');
  });

  it('reissues when the SVID is from another CA, or the bundle changed', async () => {
    const newCa = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    expect(reason(secret, expected, newCa)).to.equal('WrongIssuer');
    const extra = await createSelfSignedCa({ trustDomain: 'example.org' });
    const caWithExtra = await loadCa(
      {
        certPem: ca.certificate.toString(),
        keyPem: ca.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      },
      { extraRootsPem: extra.certPem },
    );
    expect(reason(secret, expected, caWithExtra)).to.equal('BundleChanged');
  });

  it('reissues when the SPIFFE ID, DNS names, key type or duration changed', () => {
    expect(reason(secret, { ...expected, spiffeId: 'spiffe://example.org/ns/prod/sa/other' })).to.equal(
      'SpecChanged',
    );
    expect(reason(secret, { ...expected, dnsNames: ['payments', 'payments.prod.svc'] })).to.equal(
      'SpecChanged',
    );
    expect(reason(secret, { ...expected, key: { algorithm: 'Ed25519' } })).to.equal('SpecChanged');
    expect(reason(secret, { ...expected, durationSeconds: 7200 })).to.equal('SpecChanged');
    expect(reason(secret, { ...expected, dnsNames: [...expected.dnsNames] })).to.equal('keep');
  });

  it('reissues at the renewal time, not before', () => {
    const renewAt = renewalTime(svid.notAfter, expected.renewBeforeSeconds, expected.uid);
    expect(reason(secret, expected, ca, new Date(renewAt.getTime() - 1000))).to.equal('keep');
    expect(reason(secret, expected, ca, renewAt)).to.equal('Expiring');
    expect(reason(secret, expected, ca, new Date(svid.notAfter.getTime() + 1000))).to.equal('Expiring');
  });
});
