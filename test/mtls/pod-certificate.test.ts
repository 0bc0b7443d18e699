// The library reading a `podCertificate` projected volume: the single credential bundle file (PKCS#8 key,
// then the chain) or the key + chain pair, with the trust bundle from a clusterTrustBundle source, updated
// the way the kubelet updates a projected volume (the same atomic ..data swap as a Secret volume).
import { expect } from 'chai';
import fc from 'fast-check';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import {
  openPodCertificateSource,
  splitCredentialBundle,
  SvidError,
  type SvidSource,
} from '@svid-operator/mtls';
import type { IssuedSvid } from '../../src/pki/index.ts';
import { id, makePki, SecretVolume, type Files, type Pki } from './fixtures.ts';

/** The projected volume's files: credentialbundle.pem (key, then chain) and ca.crt from a ClusterTrustBundle. */
const bundleFiles = (s: IssuedSvid, bundlePem = s.bundlePem) =>
  ({ 'credentialbundle.pem': s.keyPem + s.certChainPem, 'ca.crt': bundlePem }) as unknown as Files;
const pairFiles = (s: IssuedSvid, keyPem = s.keyPem) =>
  ({ 'key.pem': keyPem, 'chain.pem': s.certChainPem, 'ca.crt': s.bundlePem }) as unknown as Files;

describe('mTLS library: pod-certificate volumes', function () {
  this.timeout(60_000);
  let pki: Pki;
  let first: IssuedSvid;
  before(async () => {
    pki = await makePki();
    first = await pki.issue('web');
  });

  describe('splitting a credential bundle', () => {
    it('splits a PKCS#8 key followed by the chain', () => {
      const r = splitCredentialBundle(first.keyPem + first.certChainPem);
      expect(r).to.deep.equal({ keyPem: first.keyPem, certChainPem: first.certChainPem });
    });

    const cert = () => first.certChainPem;
    const key = () => first.keyPem;
    const bad: { name: string; text: () => string; problem: RegExp }[] = [
      {
        name: 'the chain before the key',
        text: () => cert() + key(),
        problem: /must start with the PKCS#8 private key/,
      },
      { name: 'a key only', text: () => key(), problem: /no certificate after its key/ },
      { name: 'nothing', text: () => '', problem: /must start with the PKCS#8 private key/ },
      {
        name: 'a SEC1 "EC PRIVATE KEY"',
        text: () => key().replace(/PRIVATE KEY/g, 'EC PRIVATE KEY') + cert(),
        problem: /must start with the PKCS#8 private key/,
      },
      {
        name: 'a second key after the first',
        text: () => key() + cert() + key(),
        problem: /"PRIVATE KEY" block after its key/,
      },
      {
        name: 'text between the blocks',
        text: () => `${key()}hello\n${cert()}`,
        problem: /text outside its PEM blocks/,
      },
      { name: 'more than 128 KiB', text: () => key() + cert().repeat(200), problem: /more than 131072/ },
    ];
    for (const b of bad) {
      it(`refuses ${b.name} without quoting the key`, () => {
        const r = splitCredentialBundle(b.text());
        expect(r).to.have.property('problem').that.matches(b.problem);
        expect(JSON.stringify(r)).not.to.contain('PRIVATE KEY-----\n');
      });
    }

    it('never throws, and only ever returns blocks of the input', () => {
      fc.assert(
        fc.property(
          fc.array(fc.oneof(fc.constant(key()), fc.constant(cert()), fc.string()), { maxLength: 5 }),
          (parts) => {
            const text = parts.join('');
            const r = splitCredentialBundle(text);
            if ('keyPem' in r) {
              expect(text.startsWith(r.keyPem) || text.trimStart().startsWith(r.keyPem)).to.equal(true);
              expect(text).to.contain(r.certChainPem.split('-----END CERTIFICATE-----')[0] ?? '');
            }
          },
        ),
        { numRuns: 500 },
      );
    });
  });

  describe('as an SVID source', () => {
    let volume: SecretVolume | undefined;
    let source: SvidSource | undefined;
    afterEach(async () => {
      source?.close();
      source = undefined;
      await volume?.remove();
      volume = undefined;
    });

    it('reads credentialBundlePath and the trust bundle, and follows a kubelet refresh', async () => {
      volume = await SecretVolume.create(bundleFiles(first));
      source = await openPodCertificateSource(
        volume.dir,
        { credentialBundlePath: 'credentialbundle.pem', trustBundlePath: 'ca.crt' },
        { logger: null },
      );
      expect(source.spiffeId).to.equal(id('web'));
      expect(source.current().serialNumber).to.equal(first.serialNumber);
      // The key from the bundle's first block, the certificates from the rest.
      expect(source.current().leaf.checkPrivateKey(source.current().privateKey)).to.equal(true);
      expect(source.current().privateKey.export({ type: 'pkcs8', format: 'pem' })).to.equal(first.keyPem);
      expect(
        source
          .current()
          .certificates.map((c) => c.toString())
          .join(''),
      ).to.equal(new X509Certificate(first.certChainPem).toString());
      expect(source.trustDomains()).to.deep.equal(['mtls.example.org']);
      const next = await pki.issue('web');
      const updated = once(source, 'update');
      await volume.swap(bundleFiles(next));
      await updated;
      expect(source.current().serialNumber).to.equal(next.serialNumber);
    });

    it('keeps the current SVID when a refresh is malformed or chains to nothing it trusts', async () => {
      volume = await SecretVolume.create(bundleFiles(first));
      source = await openPodCertificateSource(
        volume.dir,
        { credentialBundlePath: 'credentialbundle.pem', trustBundlePath: 'ca.crt' },
        { logger: null },
      );
      const errors: Error[] = [];
      source.on('error', (e) => errors.push(e));
      const next = await pki.issue('web');
      await volume.swap({
        'credentialbundle.pem': next.certChainPem + next.keyPem,
        'ca.crt': next.bundlePem,
      } as unknown as Files);
      await source.reload();
      expect(errors.at(-1)?.message).to.match(
        /credentialbundle\.pem: the credential bundle must start with the PKCS#8 private key/,
      );
      const foreign = await pki.issue('web', { ca: pki.otherCa });
      await volume.swap(bundleFiles(foreign, first.bundlePem));
      await source.reload();
      expect(errors.at(-1)?.message).to.match(/does not chain to the trust bundle/);
      expect(source.current().serialNumber).to.equal(first.serialNumber);
    });

    it("reads the keyPath + certificateChainPath pair and refuses a key that is not the chain's", async () => {
      volume = await SecretVolume.create(pairFiles(first));
      source = await openPodCertificateSource(
        volume.dir,
        { keyPath: 'key.pem', certificateChainPath: 'chain.pem', trustBundlePath: 'ca.crt' },
        { logger: null },
      );
      expect(source.current().serialNumber).to.equal(first.serialNumber);
      source.close();
      source = undefined;
      await volume.remove();
      const other = await pki.issue('web');
      volume = await SecretVolume.create(pairFiles(first, other.keyPem));
      const err = await openPodCertificateSource(
        volume.dir,
        { keyPath: 'key.pem', certificateChainPath: 'chain.pem', trustBundlePath: 'ca.crt' },
        { logger: null },
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(SvidError);
      expect((err as Error).message).to.equal('the private key does not match the certificate');
    });
  });
});
