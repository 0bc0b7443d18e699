import { expect } from 'chai';
import { randomBytes, X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import { earliestRenewal, renewalTime } from '../../src/renewal/index.ts';
import type { WorkloadIdentity } from '../../src/reconcilers/workload-identity/types.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  isReady,
  putCaSecret,
  ready,
  readSvidSecret,
  until,
  waitReady,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';
import { readCrds } from '../../hack/lib/crds.ts';

const TD = 'loops.example.org';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// How long an identity is watched for a re-issue loop: the old code re-issued such SVIDs several times a
// second, so any loop shows as a revision far above 1 within this window.
const LOOP_WATCH_MS = 10_000;

describe('renewal that cannot loop or be starved', function () {
  this.timeout(10 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  const ops: OperatorProcess[] = [];
  const suffix = randomBytes(3).toString('hex');

  const setup = async (name: string, caValiditySeconds: number, args: string[]) => {
    const ns = `${name}-${suffix}`;
    const sys = `${name}-sys-${suffix}`;
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
    await putCaSecret(kc, sys, 'ca', await caData(caValiditySeconds));
    const op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      ...args,
    ]);
    ops.push(op);
    await op.start();
    return { ns, sys, op };
  };
  const caData = async (validitySeconds: number) => {
    const ca = await createSelfSignedCa({ trustDomain: TD, validitySeconds });
    return { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem };
  };

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
  });
  after(async () => {
    for (const op of ops) await op.stop();
    for (const op of ops) expect(JSON.stringify(op.logs) + op.stderr).not.to.contain('PRIVATE KEY');
  });

  it('issues an SVID cut to the CA expiry once, says why, and re-issues it once when the CA changes', async () => {
    const { ns, sys } = await setup('clamp', 300, [
      `--watch-namespace=clamp-${suffix}`,
      '--ca-propagation-delay=2s',
    ]);
    // 1h requested, 20m renewBefore: cut to the CA's 5 minutes, renewal is due at once.
    await createIdentity(kc, ns, 'clamped', { serviceAccountName: 'clamped', secretName: 'clamped-svid' });
    const w = await waitReady(kc, ns, 'clamped');
    expect(ready(w)?.message).to.contain("the lifetime was cut to the CA's expiry");
    await sleep(LOOP_WATCH_MS);
    const later = await getIdentity(kc, ns, 'clamped');
    expect(later.status?.revision, 'issuances').to.equal(1);
    expect(later.status?.serialNumber).to.equal(w.status?.serialNumber);
    expect(Date.parse(later.status?.renewalTime ?? '')).to.equal(Date.parse(later.status?.notAfter ?? ''));

    // A new CA: one re-issue, from it.
    const next = await caData(30 * 24 * 3600);
    await putCaSecret(kc, sys, 'ca', next);
    const renewed = await waitReady(kc, ns, 'clamped', 60_000, w.status?.serialNumber);
    expect(
      (await readSvidSecret(kc, ns, 'clamped-svid')).leaf.verify(
        new X509Certificate(next['tls.crt']).publicKey,
      ),
    ).to.equal(true);
    await sleep(LOOP_WATCH_MS / 2);
    expect((await getIdentity(kc, ns, 'clamped')).status?.revision).to.equal(renewed.status?.revision);
    expect(renewed.status?.revision).to.equal(2);
  });

  it('issues once for a renewBefore close to duration stored before the CRD bounded it', async () => {
    const { ns } = await setup('close', 30 * 24 * 3600, [`--watch-namespace=close-${suffix}`]);
    const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
    const name = 'workloadidentities.identity.svid.dev';
    const [crd] = (await readCrds()) as [k8s.V1CustomResourceDefinition];
    // The CRD as an older release shipped it (renewBefore only shorter than duration), for as long as it
    // takes to store such an object; then today's CRD again.
    const older = structuredClone(crd);
    const spec = older.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec;
    if (!spec) throw new Error('the CRD has no spec schema');
    spec.x_kubernetes_validations = [
      { rule: '!has(self.renewBefore) || duration(self.renewBefore) < duration(self.duration)' },
    ];
    const replace = async (body: k8s.V1CustomResourceDefinition) => {
      const cur = await api.readCustomResourceDefinition({ name });
      await api.replaceCustomResourceDefinition({
        name,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: cur.metadata?.resourceVersion } },
      });
    };
    let stored: WorkloadIdentity;
    try {
      await replace(older);
      stored = await until('the older CRD in force', 30_000, () =>
        createIdentity(kc, ns, 'close', {
          serviceAccountName: 'close',
          secretName: 'close-svid',
          duration: '10m',
          renewBefore: '9m59s',
        }).catch(() => undefined),
      );
    } finally {
      await replace(crd);
    }
    expect(stored.spec.renewBefore).to.equal('9m59s');
    const w = await waitReady(kc, ns, 'close');
    expect(ready(w)?.message).to.contain(
      'renewBefore 9m59s was moved to 5m: it must be at most half the duration',
    );
    await sleep(LOOP_WATCH_MS);
    expect((await getIdentity(kc, ns, 'close')).status?.revision, 'issuances').to.equal(1);
  });

  it('gives a new identity its first SVID ahead of a backlog of 1,000 paced re-issues', async () => {
    const N = 1000;
    const RATE = 20;
    const big = `backlog-${suffix}`;
    const other = `other-${suffix}`;
    await createNamespace(kc, other);
    // A long propagation delay keeps the rotation in its first phase: 1,000 paced bundle rewrites.
    const { sys } = await setup('backlog', 30 * 24 * 3600, [
      `--watch-namespace=${big}`,
      `--watch-namespace=${other}`,
      `--issuance-rate=${RATE}`,
      '--ca-propagation-delay=1h',
    ]);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const names = Array.from({ length: N }, (_, i) => `id-${i}`);
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        names
          .slice(i, i + 50)
          .map((n) => createIdentity(kc, big, n, { serviceAccountName: n, secretName: `${n}-svid` })),
      );
    }
    const list = async () =>
      (
        (await custom.listNamespacedCustomObject({
          group: 'identity.svid.dev',
          version: 'v1alpha1',
          plural: 'workloadidentities',
          namespace: big,
        })) as { items: WorkloadIdentity[] }
      ).items;
    await until(`${N} identities Ready`, 5 * 60_000, async () =>
      (await list()).filter(isReady).length === N ? true : undefined,
    );
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const rewritten = async () =>
      (
        await core.listNamespacedSecret({
          namespace: big,
          labelSelector: 'app.kubernetes.io/managed-by=svid-operator',
        })
      ).items.filter(
        (s) =>
          (
            Buffer.from(s.data?.['ca.crt'] ?? '', 'base64')
              .toString()
              .match(/BEGIN CERTIFICATE/g) ?? []
          ).length === 2,
      ).length;

    await putCaSecret(kc, sys, 'ca', await caData(30 * 24 * 3600));
    // The backlog is under way: bundles are being rewritten at the paced rate.
    await until('paced bundle rewrites started', 60_000, async () =>
      (await rewritten()) > 0 ? true : undefined,
    );
    await createIdentity(kc, other, 'newcomer', {
      serviceAccountName: 'newcomer',
      secretName: 'newcomer-svid',
    });
    await createIdentity(kc, big, 'newcomer', {
      serviceAccountName: 'newcomer',
      secretName: 'newcomer-svid',
    });
    await waitReady(kc, other, 'newcomer', 60_000);
    await waitReady(kc, big, 'newcomer', 60_000);
    const done = await rewritten();
    // Counted in paced writes instead of seconds (load-independent): the newcomers were issued while the
    // backlog had barely moved. Waiting behind it (the old behaviour) means ~1,000 rewrites first; 10 s of
    // the paced rate is the allowance.
    expect(done, 'paced rewrites done before both newcomers were Ready').to.be.below(10 * RATE);
    expect(done).to.be.below(N);
    console.log(`      ${done} of ${N} paced bundle rewrites done when both newcomers were Ready`);
  });

  it('takes a bunched renewal cycle early, inside the look-ahead window of each SVID, when the rate is short', async () => {
    // 40 identities created together with 2-minute SVIDs (renewBefore 40 s, jitter up to 4 s) fall due
    // within a few seconds of each other; at --issuance-rate=3 that is ~13 s of tokens. Each may be renewed
    // from the middle of its life (60 s): the pacer starts early, since they enter that window faster than
    // the rate. What is asserted does not depend on the machine's speed: renewals were taken early, none
    // before its window opened, and each new status says when the new SVID is due by the usual rule.
    const N = 40;
    const name = `early-${suffix}`;
    const { ns, op } = await setup('early', 30 * 24 * 3600, [
      `--watch-namespace=${name}`,
      '--issuance-rate=3',
      '--min-duration=10s',
      '--min-renew-before=5s',
    ]);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const names = Array.from({ length: N }, (_, i) => `id-${i}`);
    await Promise.all(
      names.map((n) =>
        createIdentity(kc, ns, n, { serviceAccountName: n, secretName: `${n}-svid`, duration: '2m' }),
      ),
    );
    const list = async () =>
      (
        (await custom.listNamespacedCustomObject({
          group: 'identity.svid.dev',
          version: 'v1alpha1',
          plural: 'workloadidentities',
          namespace: ns,
        })) as { items: WorkloadIdentity[] }
      ).items;
    const first = await until(`${N} identities Ready`, 2 * 60_000, async () => {
      const items = await list();
      return items.filter(isReady).length === N ? items : undefined;
    });
    const second = await until(`${N} identities renewed`, 5 * 60_000, async () => {
      const items = await list();
      return items.filter((w) => isReady(w) && (w.status?.revision ?? 0) >= 2).length === N
        ? items
        : undefined;
    });
    const before = new Map(first.map((w) => [w.metadata.name, w]));
    let early = 0;
    for (const w of second) {
      const prev = before.get(w.metadata.name) as WorkloadIdentity;
      const prevNotAfter = new Date(prev.status?.notAfter ?? '');
      const prevRenewal = new Date(prev.status?.renewalTime ?? '');
      // The new SVID's notAfter is its issuance time plus the 2-minute duration (to the second).
      const issuedAt = Date.parse(w.status?.notAfter ?? '') - 120_000;
      const window = earliestRenewal(prevRenewal, prevNotAfter, 120, 40).getTime();
      expect(issuedAt, `${w.metadata.name} renewed before its window`).to.be.at.least(window - 1000);
      if (issuedAt < prevRenewal.getTime() - 1000) early++;
      const rule = renewalTime(new Date(w.status?.notAfter ?? ''), 40, w.metadata.uid ?? '');
      // Written to the second (RFC 3339).
      expect(Date.parse(w.status?.renewalTime ?? ''), w.metadata.name).to.equal(
        Math.floor(rule.getTime() / 1000) * 1000,
      );
      expect(ready(w)?.reason).to.equal('Renewed');
    }
    const takenEarly = op.logs.filter((l) => l.message === 'renewed SVID' && l.cause === 'RenewedEarly');
    expect(early, 'renewals issued before their renewal time').to.be.greaterThan(0);
    expect(takenEarly.length).to.be.at.least(early);
    expect(String(takenEarly[0]?.why)).to.match(/^renewal was due at .*; taken \d+s early because/);
    console.log(`      ${early} of ${N} renewals taken early`);
  });
});
