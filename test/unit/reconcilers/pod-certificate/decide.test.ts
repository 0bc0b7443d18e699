import { expect } from 'chai';
import { createSelfSignedCa, loadCa, type LoadedCa } from '../../../../src/pki/index.ts';
import {
  decide,
  validityFor,
  type SignerPolicy,
} from '../../../../src/reconcilers/pod-certificate/decide.ts';
import {
  SIGNER_NAME,
  type PodCertificateRequest,
} from '../../../../src/reconcilers/pod-certificate/types.ts';
import { pkixProof, podKeyPair, stubPkcs10 } from '../../../support/pod-requests.ts';

const policy: SignerPolicy = { trustDomain: 'example.org', durationSeconds: 24 * 3600, caGraceSeconds: 30 };
const NOW = new Date('2026-06-01T12:00:00.500Z');

function request(over: Partial<PodCertificateRequest['spec']> = {}, created = NOW): PodCertificateRequest {
  const { privateKey, publicKey } = podKeyPair('ECDSAP256');
  return {
    metadata: { name: 'req-abc', namespace: 'prod', creationTimestamp: created.toISOString() },
    spec: {
      signerName: SIGNER_NAME,
      podName: 'payments-0',
      podUID: '0b7c7e0e-1111-4222-8333-444455556666',
      serviceAccountName: 'payments',
      serviceAccountUID: 'sa-uid',
      nodeName: 'node-a',
      nodeUID: 'node-uid',
      maxExpirationSeconds: 86400,
      stubPKCS10Request: stubPkcs10(privateKey, publicKey).toString('base64'),
      ...over,
    },
  };
}

describe('pod certificate decisions', () => {
  let ca: LoadedCa;
  before(async () => {
    ca = await loadCa(
      await createSelfSignedCa({ trustDomain: 'example.org', now: new Date('2026-01-01T00:00:00Z') }),
      { now: NOW },
    );
  });
  const ctx = (over: Partial<Parameters<typeof decide>[1]> = {}) => ({
    policy,
    namespaceOptedIn: true,
    ca: { ok: true as const, ca },
    now: NOW,
    ...over,
  });

  it('issues spiffe://<td>/ns/<namespace>/sa/<serviceAccountName> for an opted-in namespace', () => {
    const d = decide(request(), ctx());
    expect(d.action).to.equal('issue');
    if (d.action !== 'issue') return;
    expect(d.spiffeId).to.equal('spiffe://example.org/ns/prod/sa/payments');
    expect(d.notBefore.toISOString()).to.equal('2026-06-01T11:59:00.000Z');
    expect(d.notAfter.getTime() - d.notBefore.getTime()).to.equal(86400_000);
  });

  it('reads the key from the deprecated pkixPublicKey + proofOfPossession pair too', () => {
    const { privateKey, publicKey } = podKeyPair('ED25519');
    const d = decide(
      request({ stubPKCS10Request: undefined, ...pkixProof(privateKey, publicKey, 'uid') }),
      ctx(),
    );
    expect(d.action).to.equal('issue');
    if (d.action === 'issue')
      expect(d.spki.equals(publicKey.export({ type: 'spki', format: 'der' }))).to.equal(true);
  });

  it('ignores other signers and requests already Issued, Denied or Failed', () => {
    expect(decide(request({ signerName: 'example.com/other' }), ctx())).to.deep.equal({
      action: 'ignore',
      why: 'another signer',
    });
    for (const type of ['Issued', 'Denied', 'Failed']) {
      const pcr = request();
      pcr.status = {
        conditions: [
          { type, status: 'True', reason: 'X', message: 'x', lastTransitionTime: NOW.toISOString() },
        ],
      };
      expect(decide(pcr, ctx())).to.deep.equal({ action: 'ignore', why: `already ${type}` });
    }
  });

  const denials: {
    name: string;
    pcr: () => PodCertificateRequest;
    optedIn?: boolean;
    reason: string;
    says: RegExp;
  }[] = [
    {
      name: 'a namespace that has not opted in',
      pcr: () => request(),
      optedIn: false,
      reason: 'NamespaceNotOptedIn',
      says: /namespace prod has not opted in.*kubectl label namespace prod identity\.svid\.dev\/pod-certificates=enabled/,
    },
    {
      name: 'a P-521 key',
      pcr: () => {
        const k = podKeyPair('ECDSAP521');
        return request({ stubPKCS10Request: stubPkcs10(k.privateKey, k.publicKey).toString('base64') });
      },
      reason: 'UnsupportedKeyType',
      says: /keyType to ECDSAP256, ECDSAP384, ED25519, RSA3072 or RSA4096/,
    },
    {
      name: 'a garbage stub request',
      pcr: () => request({ stubPKCS10Request: Buffer.from('nope').toString('base64') }),
      reason: 'InvalidRequest',
      says: /PKCS#10/,
    },
    {
      name: 'no key at all',
      pcr: () => request({ stubPKCS10Request: undefined }),
      reason: 'InvalidRequest',
      says: /neither stubPKCS10Request nor pkixPublicKey/,
    },
    {
      name: 'a service account name outside the SPIFFE path rules',
      pcr: () => request({ serviceAccountName: 'Payments_Ü' }),
      reason: 'InvalidIdentity',
      says: /service account "Payments_Ü" is not a valid Kubernetes name/,
    },
  ];
  for (const t of denials) {
    it(`denies ${t.name} with ${t.reason} and what to change`, () => {
      const d = decide(t.pcr(), ctx({ namespaceOptedIn: t.optedIn ?? true }));
      expect(d).to.include({ action: 'deny', reason: t.reason });
      if (d.action === 'deny') expect(d.message).to.match(t.says);
    });
  }

  it('waits for an unusable CA within the grace period, then fails with the CA problem', () => {
    const broken = { ok: false as const, message: 'the CA Secret svid-system/ca does not exist: create it' };
    const waiting = decide(request({}, new Date(NOW.getTime() - 10_000)), ctx({ ca: broken }));
    expect(waiting).to.include({ action: 'wait', reason: 'CAUnavailable' });
    if (waiting.action === 'wait') {
      expect(waiting.retryAfterMs).to.equal(5000);
      expect(waiting.message).to.match(/waiting up to 20 s for the CA: the CA Secret .* does not exist/);
    }
    const failed = decide(request({}, new Date(NOW.getTime() - 31_000)), ctx({ ca: broken }));
    expect(failed).to.include({ action: 'fail', reason: 'CAUnavailable' });
    if (failed.action === 'fail')
      expect(failed.message).to.match(/does not exist: create it; the pod's kubelet will ask again/);
  });

  it('fails with CAExpiresTooSoon when the CA cannot cover the 1 hour minimum', () => {
    const d = decide(request(), ctx({ now: new Date(ca.notAfter.getTime() - 30 * 60_000) }));
    expect(d).to.include({ action: 'fail', reason: 'CAExpiresTooSoon' });
    if (d.action === 'fail') expect(d.message).to.match(/rotate the CA Secret/);
  });

  describe('lifetime and beginRefreshAt', () => {
    const window = () => ({ notBefore: ca.notBefore, notAfter: ca.notAfter });
    const cases = [
      { max: 3600, flag: 86400, life: 3600 },
      { max: 86400, flag: 7200, life: 7200 },
      { max: 7776000, flag: 86400, life: 86400 },
      { max: undefined, flag: 5400, life: 5400 },
    ];
    for (const c of cases) {
      it(`min(maxExpirationSeconds ${c.max}, --pod-certificate-duration ${c.flag}) = ${c.life} s, refresh inside the API's window`, () => {
        const v = validityFor(
          request({ maxExpirationSeconds: c.max }),
          { ...policy, durationSeconds: c.flag },
          window(),
          NOW,
        );
        if ('tooShort' in v) throw new Error(v.tooShort);
        const life = (v.notAfter.getTime() - v.notBefore.getTime()) / 1000;
        expect(life).to.equal(c.life);
        const refresh = v.beginRefreshAt.getTime();
        expect(refresh).to.be.at.least(v.notBefore.getTime() + 600_000);
        expect(refresh).to.be.at.most(v.notAfter.getTime() - 600_000);
        // A third of the lifetime before expiry, minus at most a tenth of that (or 5 min) of jitter.
        const third = (life / 3) * 1000;
        expect(refresh).to.be.at.most(v.notAfter.getTime() - third + 1000);
        expect(refresh).to.be.at.least(v.notAfter.getTime() - third - Math.min(third / 10, 300_000) - 1000);
      });
    }

    it('spreads refresh times of pods asking at the same moment, fixed per pod UID', () => {
      const times = new Set<number>();
      for (let i = 0; i < 50; i++) {
        const v = validityFor(request({ podUID: `pod-${i}` }), policy, window(), NOW);
        if ('tooShort' in v) throw new Error(v.tooShort);
        times.add(v.beginRefreshAt.getTime());
        const again = validityFor(request({ podUID: `pod-${i}` }), policy, window(), NOW);
        if ('tooShort' in again) throw new Error(again.tooShort);
        expect(again.beginRefreshAt.getTime()).to.equal(v.beginRefreshAt.getTime());
      }
      expect(times.size).to.be.greaterThan(40);
    });

    it('with --pod-certificate-refresh-after, refreshes that long after notBefore, kept inside the window', () => {
      const cases = [
        // 1 h lifetime, 10 min after notBefore: the API's earliest allowed point.
        { max: 3600, after: 600, expectAfter: 600 },
        { max: 86400, after: 3600, expectAfter: 3600 },
        // A request asking for less than the flag leaves room for: cut to notAfter - 10 min.
        { max: 3600, after: 7200, expectAfter: 3000 },
      ];
      for (const c of cases) {
        const v = validityFor(
          request({ maxExpirationSeconds: c.max }),
          { ...policy, refreshAfterSeconds: c.after },
          window(),
          NOW,
        );
        if ('tooShort' in v) throw new Error(v.tooShort);
        expect((v.beginRefreshAt.getTime() - v.notBefore.getTime()) / 1000, JSON.stringify(c)).to.equal(
          c.expectAfter,
        );
        expect((v.notAfter.getTime() - v.notBefore.getTime()) / 1000).to.equal(c.max);
      }
      // Fixed, not spread per pod: the kubelet adds its own 0-5 min jitter.
      const a = validityFor(request({ podUID: 'a' }), { ...policy, refreshAfterSeconds: 600 }, window(), NOW);
      const b = validityFor(request({ podUID: 'b' }), { ...policy, refreshAfterSeconds: 600 }, window(), NOW);
      if ('tooShort' in a || 'tooShort' in b) throw new Error('too short');
      expect(a.beginRefreshAt.getTime()).to.equal(b.beginRefreshAt.getTime());
    });

    it('cuts notAfter to the CA expiry when at least an hour is left', () => {
      const now = new Date(ca.notAfter.getTime() - 2 * 3600_000);
      const v = validityFor(request(), policy, window(), now);
      if ('tooShort' in v) throw new Error(v.tooShort);
      expect(v.notAfter.getTime()).to.equal(Math.floor(ca.notAfter.getTime() / 1000) * 1000);
    });
  });
});
