// Long test, not in the CI suite (about 15-20 minutes on a 2-core machine): `npm run test:long`.
// A CA rotation under 1,000 identities with 10-minute lifetimes, at the default --issuance-rate (10/s), so
// renewals fall due while the rotation re-issues: no Secret may ever hold an expired SVID, and every pair of
// coexisting states trusts each other.
import { expect } from 'chai';
import { randomBytes, X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import type { WorkloadIdentity } from '../../src/controller/types.ts';
import { createIdentity, createNamespace, isReady, putCaSecret, until } from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { checkCoexistingPairs, SecretHistory } from '../harness/secret-history.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'long.example.org';
const N = 1000;
const KUBELET_DELAY_MS = 20_000;

describe('CA rotation under 1,000 identities with 10-minute SVIDs (long)', function () {
  this.timeout(45 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let op: OperatorProcess;
  const history = new SecretHistory();
  const suffix = randomBytes(3).toString('hex');
  const ns = `long-${suffix}`;
  const sys = `long-sys-${suffix}`;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
  });
  after(async () => {
    await op?.stop();
  });

  it('lets no SVID expire and keeps every coexisting pair trusted', async () => {
    const a = await createSelfSignedCa({ trustDomain: TD });
    const b = await createSelfSignedCa({ trustDomain: TD });
    const bCert = new X509Certificate(b.certPem);
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': a.certPem, 'tls.key': a.keyPem });
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      `--watch-namespace=${ns}`,
      // Above the kubelet delay modelled here; shorter than the default 2m to keep the run shorter.
      '--ca-propagation-delay=30s',
    ]);
    await op.start();
    await history.start(kc, ns);
    const names = Array.from({ length: N }, (_, i) => `id-${i}`);
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        names
          .slice(i, i + 50)
          .map((n) =>
            createIdentity(kc, ns, n, { serviceAccountName: n, secretName: `${n}-svid`, duration: '10m' }),
          ),
      );
    }
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const list = async () =>
      (
        (await custom.listNamespacedCustomObject({
          group: 'identity.svid.dev',
          version: 'v1alpha1',
          plural: 'workloadidentities',
          namespace: ns,
        })) as { items: WorkloadIdentity[] }
      ).items;
    await until(`${N} Ready`, 10 * 60_000, async () =>
      (await list()).filter(isReady).length === N ? true : undefined,
    );
    // Rotate when the first renewals are about to fall due (6m40s after issuance, minus jitter), so that
    // renewals and the rotation's paced work compete.
    await new Promise((r) => setTimeout(r, 5 * 60_000));
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': b.certPem, 'tls.key': b.keyPem });
    await until('the rotation finished', 30 * 60_000, async () => {
      const latest = history.latest();
      return latest.length === N &&
        latest.every(
          (s) => s.leaf.checkIssued(bCert) && s.leaf.verify(bCert.publicKey) && s.roots.length === 1,
        )
        ? true
        : undefined;
    });
    history.stop();
    const end = Date.now();
    const expired = history.states.filter((s) => Date.parse(s.leaf.validTo) <= (s.replacedAt ?? end));
    expect(
      expired.map((s) => `${s.secret} expired ${s.leaf.validTo}`).slice(0, 10),
      `${expired.length} of ${history.states.length} states`,
    ).to.deep.equal([]);
    const pairs = checkCoexistingPairs(history.states, KUBELET_DELAY_MS, end);
    expect(pairs.failures.slice(0, 10), `${pairs.failures.length} of ${pairs.pairs}`).to.deep.equal([]);
    console.log(`      ${history.states.length} Secret states, ${pairs.pairs} coexisting pairs checked`);
  });
});
