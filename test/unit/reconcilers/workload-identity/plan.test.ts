import { expect } from 'chai';
import {
  earlyRenewalMessage,
  isPaced,
  plan,
  retryDelayMs,
  retryWithinMs,
  scheduledRenewal,
  type IdentityPolicy,
} from '../../../../src/reconcilers/workload-identity/plan.ts';
import { readyCondition, statusEqual } from '../../../../src/reconcilers/workload-identity/status.ts';
import type { WorkloadIdentity } from '../../../../src/reconcilers/workload-identity/types.ts';
import { createSelfSignedCa, issueSvid, loadCa, type LoadedCa } from '../../../../src/pki/index.ts';

const policy: IdentityPolicy = {
  trustDomain: 'example.org',
  clusterDomain: 'cluster.local',
  allowedDnsPatterns: [],
  bounds: { minSeconds: 60, maxSeconds: 86400 },
};

const identity = (spec: Partial<WorkloadIdentity['spec']> = {}): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: { name: 'payments', namespace: 'prod', uid: 'uid-1', generation: 1 },
  spec: { serviceAccountName: 'payments', secretName: 'payments-svid', ...spec },
});

describe('reconcile plan', () => {
  let ca: LoadedCa;
  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
  });
  const ok = () => ({ ok: true as const, ca });
  const now = new Date();

  it('issues when the Secret is absent, with the SPIFFE ID from the namespace', () => {
    const p = plan(identity(), policy, ok(), { kind: 'absent' }, now);
    expect(p.action).to.equal('issue');
    if (p.action !== 'issue') return;
    expect(p.create).to.equal(true);
    expect(p.desired.spiffeId).to.equal('spiffe://example.org/ns/prod/sa/payments');
    expect(p.desired.key).to.deep.equal({ algorithm: 'ECDSA', size: 256 });
    expect(p.desired.renewBeforeSeconds).to.equal(1200);
  });

  it('keeps a valid owned SVID and reissues a mismatched one', async () => {
    const svid = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
    });
    const owned = {
      kind: 'owned' as const,
      svid: { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem },
    };
    expect(plan(identity(), policy, ok(), owned, now).action).to.equal('keep');
    const p = plan(identity({ dnsNames: ['payments'] }), policy, ok(), owned, now);
    expect(p.action === 'issue' && p.cause).to.equal('SpecChanged');
  });

  it('fails with a reason for each kind of bad input, before touching the CA', () => {
    const reason = (
      wi: WorkloadIdentity,
      secret: Parameters<typeof plan>[3] = { kind: 'absent' },
      caState: Parameters<typeof plan>[2] = ok(),
    ) => {
      const p = plan(wi, policy, caState, secret, now);
      return p.action === 'fail' ? `${p.reason}: ${p.message}` : p.action;
    };
    expect(reason(identity({ dnsNames: ['x.other.svc'] }))).to.match(
      /^PolicyViolation: .*belongs to namespace "other"/,
    );
    expect(reason(identity({ duration: '10s' }))).to.match(
      /^InvalidSpec: duration 10s is outside the operator's bounds/,
    );
    expect(reason(identity({ duration: '1m' }))).to.match(
      /^InvalidSpec: duration 1m is too short to renew at least 1m before expiry/,
    );
    expect(reason(identity({ privateKey: { algorithm: 'RSA', size: 1024 } }))).to.match(
      /^InvalidSpec: RSA keys have size/,
    );
    expect(reason(identity({ serviceAccountName: 'Bad_Name' }))).to.match(
      /^InvalidSpec: service account "Bad_Name"/,
    );
    expect(reason(identity(), { kind: 'foreign', why: 'it lacks the label' })).to.match(
      /^SecretConflict: Secret prod\/payments-svid exists/,
    );
    expect(reason(identity(), { kind: 'absent' }, { ok: false, message: 'no CA' })).to.equal(
      'CAUnavailable: no CA',
    );
  });

  it('caps retry backoff at a quarter of the remaining lifetime', () => {
    const t = new Date('2030-01-01T00:00:00Z');
    expect(retryDelayMs(1, undefined, t)).to.equal(1000);
    expect(retryDelayMs(4, undefined, t)).to.equal(8000);
    expect(retryDelayMs(20, undefined, t)).to.equal(300_000);
    expect(retryDelayMs(20, new Date(t.getTime() + 60_000), t)).to.equal(15_000);
    expect(retryDelayMs(20, new Date(t.getTime() + 1000), t)).to.equal(1000);
  });

  it("bounds a failed renewal write's retry by a quarter of the current SVID's time left, while it is valid", () => {
    const t = new Date('2030-01-01T00:00:00Z');
    expect(retryWithinMs(new Date(t.getTime() + 20_000), t)).to.equal(5000);
    expect(retryWithinMs(new Date(t.getTime() + 1), t)).to.equal(0.25);
    expect(retryWithinMs(t, t), 'expired at this instant').to.equal(undefined);
    expect(retryWithinMs(new Date(t.getTime() - 1000), t), 'expired').to.equal(undefined);
    expect(retryWithinMs(undefined, t), 'no SVID yet').to.equal(undefined);
    expect(retryWithinMs(new Date('not a time'), t), 'an unreadable status.notAfter').to.equal(undefined);
  });

  it('paces only re-issuance for a workload that still holds a valid SVID', () => {
    const t = new Date('2030-01-01T00:00:00Z');
    const valid = new Date(t.getTime() + 60_000);
    const expired = new Date(t.getTime() - 1);
    for (const cause of ['WrongIssuer', 'BundleChanged', 'Expiring']) {
      expect(isPaced(cause, valid, t), cause).to.equal(true);
      expect(isPaced(cause, expired, t), `${cause}, expired`).to.equal(false);
      expect(isPaced(cause, undefined, t), `${cause}, never issued`).to.equal(false);
    }
    for (const cause of ['Missing', 'Corrupt', 'KeyMismatch', 'NotConformant', 'SpecChanged']) {
      expect(isPaced(cause, valid, t), cause).to.equal(false);
    }
    // Close to expiry (less than half of renewBefore left) an SVID stops waiting for the pace.
    expect(isPaced('Expiring', new Date(t.getTime() + 601_000), t, 1200)).to.equal(true);
    expect(isPaced('Expiring', new Date(t.getTime() + 600_000), t, 1200)).to.equal(false);
    expect(isPaced('WrongIssuer', new Date(t.getTime() + 30_000), t, 120)).to.equal(false);
  });

  it('rewrites only the bundle when only the bundle changed (a CA rotation), keeping certificate and key', async () => {
    const svid = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
    });
    const other = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    const widened = {
      ok: true as const,
      ca: { ...ca, trustBundlePem: ca.trustBundlePem + other.trustBundlePem },
    };
    const owned = {
      kind: 'owned' as const,
      svid: { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem },
    };
    const p = plan(identity(), policy, widened, owned, now);
    expect(p.action).to.equal('rebundle');
    expect(p.action === 'rebundle' && p.serialNumber).to.equal(svid.serialNumber);
    // Another problem still means a new certificate.
    const p2 = plan(identity({ dnsNames: ['payments'] }), policy, widened, owned, now);
    expect(p2.action === 'issue' && p2.cause).to.equal('SpecChanged');
  });

  it('keeps an SVID cut to the CA expiry until the CA changes or it expires, instead of re-issuing it in a loop', async () => {
    const t = new Date();
    // A CA with 10 minutes left: a 1h SVID is cut to it, and its renewal (20m before) is already due.
    const shortCa = await loadCa(
      await createSelfSignedCa({ trustDomain: 'example.org', validitySeconds: 600, now: t }),
    );
    const svid = await issueSvid(shortCa, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
      now: t,
    });
    expect(svid.clampedToCa).to.equal(true);
    const owned = {
      kind: 'owned' as const,
      svid: { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem },
    };
    const p = plan(identity(), policy, { ok: true, ca: shortCa }, owned, new Date(t.getTime() + 1000));
    expect(p.action).to.equal('keep');
    expect(p.action === 'keep' && p.renewalTime.getTime()).to.equal(shortCa.notAfter.getTime());
    // The status written at issuance already says so, so the next reconcile writes nothing.
    const renewal = new Date(svid.notAfter.getTime() - 1200_000);
    expect(scheduledRenewal(renewal, svid.notAfter, true, t).getTime()).to.equal(svid.notAfter.getTime());
    expect(scheduledRenewal(renewal, svid.notAfter, false, t).getTime()).to.equal(renewal.getTime());
    // A new CA re-issues it at once.
    const p2 = plan(identity(), policy, ok(), owned, new Date(t.getTime() + 1000));
    expect(p2.action === 'issue' && p2.cause).to.equal('WrongIssuer');
  });

  it('lets a kept SVID be renewed early from its look-ahead window, unless the CA ends before a new one would', async () => {
    const t = new Date();
    const svid = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
      now: t,
    });
    const owned = {
      kind: 'owned' as const,
      svid: { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem },
    };
    const p = plan(identity(), policy, ok(), owned, t);
    expect(p.action).to.equal('keep');
    if (p.action !== 'keep') return;
    // renewBefore 20m: up to 10m ahead of the renewal time, never before the midpoint of the 1h life
    // (counted from notAfter: notBefore is backdated for clock skew).
    const midpoint = p.notAfter.getTime() - 1800_000;
    const want = Math.max(p.renewalTime.getTime() - 600_000, Math.ceil(midpoint));
    expect(p.earlyFrom?.getTime()).to.equal(want);
    expect(earlyRenewalMessage(p.renewalTime, new Date(p.renewalTime.getTime() - 90_000))).to.match(
      /^renewal was due at .*Z; taken 90s early because more renewals fall due/,
    );
    // A CA that ends 5000 s after t: from t + 1400 s on a new 1h SVID would be cut to it, so nothing is
    // taken early from then on.
    const shortCa = await loadCa(
      await createSelfSignedCa({ trustDomain: 'example.org', validitySeconds: 5000, now: t }),
    );
    const svid2 = await issueSvid(shortCa, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
      now: t,
    });
    expect(svid2.clampedToCa).to.equal(false);
    const owned2 = {
      kind: 'owned' as const,
      svid: { certChainPem: svid2.certChainPem, keyPem: svid2.keyPem, bundlePem: svid2.bundlePem },
    };
    const short = { ok: true as const, ca: shortCa };
    const before = plan(identity(), policy, short, owned2, new Date(t.getTime() + 1000_000));
    expect(before.action === 'keep' && before.earlyFrom !== undefined).to.equal(true);
    const p3 = plan(identity(), policy, short, owned2, new Date(t.getTime() + 2000_000));
    expect(p3.action).to.equal('keep');
    expect(p3.action === 'keep' && p3.earlyFrom).to.equal(undefined);
  });

  it('keeps lastTransitionTime while the Ready status is unchanged, and compares statuses by content', () => {
    const t1 = new Date('2030-01-01T00:00:00Z');
    const t2 = new Date('2030-01-01T01:00:00Z');
    const c1 = readyCondition(undefined, 'True', 'Issued', 'm', 1, t1);
    const c2 = readyCondition(c1, 'True', 'Renewed', 'm2', 1, t2);
    expect(c2[0]?.lastTransitionTime).to.equal('2030-01-01T00:00:00Z');
    const c3 = readyCondition(c2, 'False', 'CAUnavailable', 'x', 1, t2);
    expect(c3[0]?.lastTransitionTime).to.equal('2030-01-01T01:00:00Z');
    expect(
      statusEqual({ revision: 1, spiffeID: 'a' }, { spiffeID: 'a', revision: 1, lastFailureTime: undefined }),
    ).to.equal(true);
    expect(statusEqual({ revision: 1 }, { revision: 2 })).to.equal(false);
  });
});
