// The echo of the operator's own write when it arrives before the write's answer (write-memory.ts): a fault
// proxy holds the API server's answers to the operator's Secret and status writes for seconds after the API
// server applied them, so the watch event always comes first. The echo must cost no second reconcile, and a
// change someone else makes while the operator's write is in flight must still be reconciled.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { ANNOTATION_RENEW_REQUEST } from '../../src/reconcilers/workload-identity/renew-request.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import { FaultProxy } from '../harness/fault-proxy.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  putCaSecret,
  until,
  waitReady,
  wid,
} from '../harness/identities.ts';
import { OperatorProcess, sumMetric } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'echo.example.org';
const RECONCILES = 'svid_operator_reconcile_duration_seconds_count';

describe('the echo of an own write that arrives before its answer', function () {
  this.timeout(5 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let proxy: FaultProxy;
  let op: OperatorProcess;
  let tmp: string;
  const suffix = randomBytes(3).toString('hex');
  const ns = `echo-${suffix}`;
  const sys = `echo-sys-${suffix}`;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'svid-echo-'));
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    proxy = await FaultProxy.forControlPlane(cp);
    const kubeconfig = path.join(tmp, 'proxy.kubeconfig');
    await proxy.writeKubeconfig(kubeconfig);
    // No periodic resync: only watch events and the operator's own schedule reconcile anything.
    op = new OperatorProcess(kubeconfig, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      `--watch-namespace=${ns}`,
      '--resync-period=0',
    ]);
    await op.start();
  });
  after(async () => {
    await op?.stop();
    await proxy?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  const reconciles = async () => sumMetric(await op.metrics([RECONCILES.replace(/_count$/, '')]), RECONCILES);

  /** The reconcile count once it has not moved for `quietMs` and no answer is held. */
  async function settled(quietMs = 3000): Promise<number> {
    let last = await reconciles();
    let since = Date.now();
    return until('the operator to settle', 60_000, async () => {
      await new Promise((r) => setTimeout(r, 250));
      const now = await reconciles();
      if (now !== last || proxy.heldResponses() > 0) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs ? now : undefined;
    });
  }

  // The operator's cached copies of the Secrets it manages keep tls.crt and tls.key only until their facts
  // are known (slim.ts); an echo no reconcile reads must not keep them either (~1.4 KB per identity).
  const HELD = 'svid_operator_cached_secrets_with_svid_data';
  const cachedWithSvidData = async () => sumMetric(await op.metrics([HELD]), HELD);

  const requestRenewal = (name: string, value: string) =>
    wid(kc).patchNamespacedCustomObject(
      {
        group: 'identity.svid.dev',
        version: 'v1alpha1',
        plural: 'workloadidentities',
        namespace: ns,
        name,
        body: { metadata: { annotations: { [ANNOTATION_RENEW_REQUEST]: value } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

  it('a renewal whose Secret and status echoes both arrive first costs one reconcile', async () => {
    await createIdentity(kc, ns, 'a', { serviceAccountName: 'a', secretName: 'a-svid' });
    const before = await waitReady(kc, ns, 'a');
    const start = await settled();
    expect(await op.metrics([HELD]), 'the gauge is served').to.include(`${HELD} `);
    expect(await cachedWithSvidData(), 'cached Secrets holding SVID data after the issuance').to.equal(0);
    proxy.addRule({
      name: 'hold-secret',
      method: 'PATCH',
      path: /\/secrets\//,
      fault: { kind: 'hold', ms: 2000 },
    });
    proxy.addRule({
      name: 'hold-status',
      method: 'PATCH',
      path: /\/status/,
      fault: { kind: 'hold', ms: 2000 },
    });
    try {
      await requestRenewal('a', '2026-11-24T08:00:00Z');
      const renewed = await until('the renewal', 60_000, async () => {
        const w = await getIdentity(kc, ns, 'a');
        return w.status?.lastRenewRequest === '2026-11-24T08:00:00Z' ? w : undefined;
      });
      expect(renewed.status?.serialNumber).to.not.equal(before.status?.serialNumber);
      const end = await settled();
      const held = Object.fromEntries(proxy.stats().rules.map((r) => [r.name, r.injected]));
      expect(held, 'answers held').to.deep.equal({ 'hold-secret': 1, 'hold-status': 1 });
      // The annotation's watch event: one reconcile; the two echoes: none.
      expect(end - start).to.equal(1);
      // The Secret's echo came first and was held, then dropped as the echo once the answer came.
      expect(await cachedWithSvidData(), 'cached Secrets holding SVID data after the renewal').to.equal(0);
    } finally {
      proxy.clearRules();
    }
  });

  it("someone else's change to the Secret while the operator's write is in flight is still reconciled", async () => {
    await createIdentity(kc, ns, 'b', { serviceAccountName: 'b', secretName: 'b-svid' });
    const before = await waitReady(kc, ns, 'b');
    await settled();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    proxy.addRule({
      name: 'hold-secret-long',
      method: 'PATCH',
      path: /\/secrets\/b-svid/,
      fault: { kind: 'hold', ms: 5000 },
      times: 1,
    });
    try {
      await requestRenewal('b', '2026-11-24T08:01:00Z');
      // The operator's patch has reached the API server (its answer is held): now a foreign edit.
      await until('the operator’s Secret write to land', 30_000, async () => {
        const s = await core.readNamespacedSecret({ namespace: ns, name: 'b-svid' });
        const serial = s.metadata?.annotations?.['identity.svid.dev/serial-number'];
        return serial && serial !== before.status?.serialNumber ? s : undefined;
      });
      await core.patchNamespacedSecret(
        {
          namespace: ns,
          name: 'b-svid',
          body: { data: { foreign: Buffer.from('x').toString('base64') } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      console.log(`      operator answers still held after the foreign edit: ${proxy.heldResponses()}`);
      // Without a resync, only the held watch event handed back as a change can make the operator look
      // again: it re-issues (a foreign data key is tampering) and removes the key.
      const fixed = await until('the foreign key removed', 60_000, async () => {
        const s = await core.readNamespacedSecret({ namespace: ns, name: 'b-svid' });
        return s.data && !('foreign' in s.data) ? s : undefined;
      });
      const w = await until('status to match the Secret', 30_000, async () => {
        const x = await getIdentity(kc, ns, 'b');
        return x.status?.serialNumber === fixed.metadata?.annotations?.['identity.svid.dev/serial-number']
          ? x
          : undefined;
      });
      expect(w.status?.lastRenewRequest).to.equal('2026-11-24T08:01:00Z');
      await settled();
      expect(await cachedWithSvidData(), 'cached Secrets holding SVID data after the re-issue').to.equal(0);
    } finally {
      proxy.clearRules();
    }
  });
});
