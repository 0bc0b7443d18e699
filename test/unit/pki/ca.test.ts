import { expect } from 'chai';
import { createSelfSignedCa, issueSvid, loadCa, PkiError } from '../../../src/pki/index.ts';
import { opensslCa, opensslIntermediate } from '../../support/pki-fixtures.ts';

/** Expects a PkiError with this code and message, which quotes no line of any key in `keys`. */
async function expectPkiError(
  p: Promise<unknown>,
  code: string,
  text: RegExp,
  keys: string[] = [],
): Promise<PkiError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(PkiError);
    expect((err as PkiError).code).to.equal(code);
    expect((err as PkiError).message).to.match(text);
    for (const line of keys
      .flatMap((k) => k.split('\n'))
      .filter((l) => l.length >= 16 && !l.startsWith('-----'))) {
      expect((err as PkiError).message).not.to.contain(line.slice(0, 16));
    }
    return err as PkiError;
  }
  expect.fail(`expected PkiError ${code}`);
}

describe('CA loading', () => {
  it('loads self-signed roots of every supported key type', async () => {
    for (const key of [
      { algorithm: 'ECDSA', size: 256 },
      { algorithm: 'ECDSA', size: 384 },
      { algorithm: 'Ed25519' },
      { algorithm: 'RSA', size: 2048 },
    ] as const) {
      const material = await createSelfSignedCa({ trustDomain: 'example.org', key });
      const ca = await loadCa(material);
      expect(ca.keySpec).to.deep.equal(key);
      expect(ca.chainPem).to.equal('');
      expect(ca.trustBundlePem).to.equal(ca.certificate.toString());
      expect(ca.fingerprint).to.match(/^[0-9a-f]{64}$/);
    }
  });

  it('loads an intermediate whose root is in ca.crt and chains leaves through it', async () => {
    const root = await opensslCa({
      keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
    });
    const { certPem: intermediatePem, keyPem: intermediateKey } = await opensslIntermediate(root);
    const ca = await loadCa({ certPem: intermediatePem, keyPem: intermediateKey, bundlePem: root.certPem });
    expect(ca.chainPem).to.equal(ca.certificate.toString());
    expect(ca.trustBundlePem.trim()).to.equal(root.certPem.trim());
    await expectPkiError(
      loadCa({ certPem: intermediatePem, keyPem: intermediateKey }),
      'CaMissingRoot',
      /add the root certificate\(s\) as ca\.crt/,
    );
    const other = await createSelfSignedCa({ trustDomain: 'other.org' });
    await expectPkiError(
      loadCa({ certPem: intermediatePem, keyPem: intermediateKey, bundlePem: other.certPem }),
      'CaChainBroken',
      /does not chain to any root in ca\.crt/,
    );
  });

  it('adds extra roots to the bundle once each', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org' });
    const b = await createSelfSignedCa({ trustDomain: 'example.org' });
    const ca = await loadCa(a, { extraRootsPem: b.certPem + a.certPem });
    expect(ca.trustBundlePem.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
  });

  it('says when there is no certificate or no key', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org' });
    await expectPkiError(
      loadCa({ certPem: '', keyPem: a.keyPem }),
      'CaMissingCertificate',
      /tls\.crt holds no PEM certificate/,
    );
    await expectPkiError(
      loadCa({ certPem: 'garbage', keyPem: a.keyPem }),
      'CaMissingCertificate',
      /no PEM certificate/,
    );
    await expectPkiError(
      loadCa({ certPem: a.certPem, keyPem: '' }),
      'CaMissingKey',
      /tls\.key holds no PEM private key/,
    );
  });

  it('says when PEM is truncated or corrupt, without quoting the key', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org' });
    const truncatedCert = a.certPem.replace(/(BEGIN CERTIFICATE-----\n.{40}).*?(\n-----END)/s, '$1$2');
    await expectPkiError(
      loadCa({ certPem: truncatedCert, keyPem: a.keyPem }),
      'CaMissingCertificate',
      /not valid DER/,
    );
    const lines = a.keyPem.split('\n');
    const truncatedKey = [...lines.slice(0, 2), lines.at(-2), ''].join('\n');
    const err = await expectPkiError(
      loadCa({ certPem: a.certPem, keyPem: truncatedKey }),
      'CaMissingKey',
      /not a readable PEM private key/,
    );
    expect(err.message).not.to.contain(lines[1]?.slice(0, 20));
  });

  it('says when the key does not match the certificate', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org' });
    const b = await createSelfSignedCa({ trustDomain: 'example.org' });
    await expectPkiError(
      loadCa({ certPem: a.certPem, keyPem: b.keyPem }),
      'CaKeyMismatch',
      /does not belong to the first certificate/,
    );
  });

  it('refuses a certificate that is not a CA', async () => {
    const leafLike = await opensslCa({
      keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      extensions: ['basicConstraints=critical,CA:FALSE'],
    });
    await expectPkiError(loadCa(leafLike), 'CaNotCa', /basicConstraints CA:TRUE is missing/);
    const noCertSign = await opensslCa({
      keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
    });
    await expectPkiError(loadCa(noCertSign), 'CaNotCa', /keyCertSign/);
  });

  it('refuses an expired CA and one not yet valid', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org', validitySeconds: 3600 });
    await expectPkiError(
      loadCa(a, { now: new Date(Date.now() + 2 * 3600_000) }),
      'CaExpired',
      /expired at .*replace the CA Secret/,
    );
    await expectPkiError(
      loadCa(a, { now: new Date(Date.now() - 3600_000) }),
      'CaNotYetValid',
      /not valid before/,
    );
  });

  it('refuses RSA-1024 and unsupported curves', async () => {
    const weak = await opensslCa({
      keyArgs: ['-newkey', 'rsa:1024'],
      extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
    });
    await expectPkiError(loadCa(weak), 'CaWeakKey', /RSA-1024, which is too weak/);
    const curve = await opensslCa({
      keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
      extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
    });
    await expectPkiError(loadCa(curve), 'CaUnsupportedKey', /secp256k1\) is not supported/);
  });

  it('clamps an SVID to the CA expiry and reports it', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org', validitySeconds: 600 });
    const ca = await loadCa(a);
    const svid = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b', durationSeconds: 3600 });
    expect(svid.clampedToCa).to.equal(true);
    expect(svid.notAfter.getTime()).to.equal(ca.notAfter.getTime());
    const short = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b', durationSeconds: 60 });
    expect(short.clampedToCa).to.equal(false);
  });
});
