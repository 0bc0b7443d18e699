// Issue 13, item 1: a leader whose caches never sync must not hold the Lease while doing nothing. It
// releases the Lease and exits within the cache-sync timeout, and a standby takes over and reconciles.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import { FaultProxy } from '../harness/fault-proxy.ts';
import { createIdentity, createNamespace, putCaSecret, waitReady } from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'giveup.example.org';

describe('a leader whose caches never sync', function () {
  this.timeout(20 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let proxy: FaultProxy | undefined;
  const ops: OperatorProcess[] = [];
  let tmp: string;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'giveup-'));
  });

  after(async () => {
    for (const op of ops) await op.stop();
    await proxy?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('releases the Lease and exits, and the standby leads', async function () {
    this.timeout(3 * 60_000);
    const ns = `giveup-${randomBytes(3).toString('hex')}`;
    await createNamespace(kc, ns);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, ns, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    // The first candidate may not list WorkloadIdentities (as with RBAC missing that verb): never synced.
    proxy = await FaultProxy.forControlPlane(cp, {
      rules: [
        {
          name: 'list-identities-403',
          method: 'GET',
          path: /workloadidentities(\?|$)(?!.*watch=true)/,
          fault: { kind: 'status', code: 403, message: 'workloadidentities is forbidden (injected)' },
        },
      ],
    });
    const proxied = path.join(tmp, 'proxy.kubeconfig');
    await proxy.writeKubeconfig(proxied);
    const args = [
      `--trust-domain=${TD}`,
      `--ca-secret=${ns}/ca`,
      `--watch-namespace=${ns}`,
      '--leader-elect=true',
      `--leader-election-namespace=${ns}`,
    ];
    const stuck = new OperatorProcess(proxied, args, {
      POD_NAME: 'stuck',
      SVID_TEST_CACHE_SYNC_TIMEOUT_SECONDS: '5',
    });
    ops.push(stuck);
    await stuck.start('became leader');
    const standby = new OperatorProcess(cp.kubeconfigPath, args, { POD_NAME: 'standby' });
    ops.push(standby);
    await standby.start(null);

    const code = await stuck.waitForExit(60_000);
    expect(code).to.equal(1);
    const why = stuck.logs.find(
      (l) => l.message === 'the controller did not start; releasing the Lease and exiting',
    );
    expect(why?.why).to.match(/^the caches did not sync within 5 s: check/);
    expect(stuck.logs.some((l) => l.message === 'released lease')).to.equal(true);
    expect(stuck.logs.some((l) => /list failed/.test(l.message) && /403/.test(String(l.error)))).to.equal(
      true,
    );

    // The standby takes over at once (the Lease was released, not left to expire) and reconciles.
    await standby.waitForLog((l) => l.message === 'caches synced; reconciling', 60_000);
    const lease = await kc
      .makeApiClient(k8s.CoordinationV1Api)
      .readNamespacedLease({ namespace: ns, name: 'svid-operator' });
    expect(lease.spec?.holderIdentity).to.equal('standby');
    await createIdentity(kc, ns, 'w', { serviceAccountName: 'w', secretName: 'w-svid' });
    await waitReady(kc, ns, 'w');
  });
});
