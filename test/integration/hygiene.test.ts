// Issue 13, item 4, against the real API server: Secret writes keep what other tools added, extra data
// keys are tampering, the oldest identity gets a shared secretName (and takes the Secret over), no identity
// may target the CA Secret, and names the owner label cannot hold are refused by the CRD.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  patchSpec,
  putCaSecret,
  ready,
  until,
  waitReady,
  waitReason,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'hygiene.example.org';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ownership and hygiene against the real API server', function () {
  this.timeout(20 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let op: OperatorProcess;
  const suffix = randomBytes(3).toString('hex');
  const ns = `hyg-${suffix}`;
  const sys = `hyg-sys-${suffix}`;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    core = kc.makeApiClient(k8s.CoreV1Api);
    for (const n of [ns, sys]) await createNamespace(kc, n);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      '--min-duration=10s',
      `--watch-namespace=${ns}`,
      `--watch-namespace=${sys}`,
    ]);
    await op.start();
  });

  after(async () => {
    await op?.stop();
    expect(JSON.stringify(op?.logs ?? []) + (op?.stderr ?? '')).not.to.contain('PRIVATE KEY');
  });

  const secret = (name: string, namespace = ns) => core.readNamespacedSecret({ namespace, name });

  it('refuses a WorkloadIdentity name longer than 63 characters, with the reason', async () => {
    const long = `a${'b'.repeat(63)}`;
    let caught: unknown;
    await createIdentity(kc, ns, long, { serviceAccountName: 'x', secretName: 'x' }).catch(
      (e: unknown) => (caught = e),
    );
    expect(caught).to.be.instanceOf(k8s.ApiException);
    expect((caught as k8s.ApiException<string>).code).to.equal(422);
    expect(String((caught as k8s.ApiException<string>).body)).to.contain(
      'metadata.name must be at most 63 characters: the operator writes it into the label identity.svid.dev/workload-identity',
    );
    const max = 'c'.repeat(63);
    await createIdentity(kc, ns, max, { serviceAccountName: 'x', secretName: 'max-svid' });
    await waitReady(kc, ns, max);
    expect((await secret('max-svid')).metadata?.labels?.['identity.svid.dev/workload-identity']).to.equal(
      max,
    );
  });

  it('keeps labels, annotations and ownerReferences other tools added when it re-issues', async () => {
    await createIdentity(kc, ns, 'keep', { serviceAccountName: 'keep', secretName: 'keep-svid' });
    const first = await waitReady(kc, ns, 'keep');
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'other-owner' } },
    });
    const s = await secret('keep-svid');
    await core.patchNamespacedSecret(
      {
        namespace: ns,
        name: 'keep-svid',
        body: {
          metadata: {
            labels: { 'example.com/team': 'payments' },
            annotations: { 'reflector.example.com/reflect': 'true' },
            ownerReferences: [
              ...(s.metadata?.ownerReferences ?? []),
              { apiVersion: 'v1', kind: 'ConfigMap', name: 'other-owner', uid: cm.metadata?.uid ?? '' },
            ],
          },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await patchSpec(kc, ns, 'keep', { dnsNames: ['keep'] });
    const second = await waitReady(kc, ns, 'keep', 30_000, first.status?.serialNumber);
    const after = await secret('keep-svid');
    expect(after.metadata?.annotations?.['identity.svid.dev/serial-number']).to.equal(
      second.status?.serialNumber,
    );
    expect(after.metadata?.labels?.['example.com/team']).to.equal('payments');
    expect(after.metadata?.annotations?.['reflector.example.com/reflect']).to.equal('true');
    expect(after.metadata?.ownerReferences?.map((r) => r.kind).sort()).to.deep.equal([
      'ConfigMap',
      'WorkloadIdentity',
    ]);
  });

  it('treats extra data keys as tampering: re-issues without them', async () => {
    await createIdentity(kc, ns, 'pad', { serviceAccountName: 'pad', secretName: 'pad-svid' });
    const first = await waitReady(kc, ns, 'pad');
    await core.patchNamespacedSecret(
      {
        namespace: ns,
        name: 'pad-svid',
        body: { data: { padding: Buffer.from('x'.repeat(100_000)).toString('base64') } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const second = await waitReady(kc, ns, 'pad', 30_000, first.status?.serialNumber);
    const after = await secret('pad-svid');
    expect(Object.keys(after.data ?? {}).sort()).to.deep.equal(['ca.crt', 'tls.crt', 'tls.key']);
    expect(after.metadata?.annotations?.['identity.svid.dev/serial-number']).to.equal(
      second.status?.serialNumber,
    );
    const line = await op.waitForLog((l) => l.identity === `${ns}/pad` && l.cause === 'Tampered', 10_000);
    expect(line.why).to.match(/holds 1 data key the operator does not write/);
  });

  it('gives a shared secretName to the oldest identity, shown on status, and the oldest takes the Secret over', async () => {
    await createIdentity(kc, ns, 'older', { serviceAccountName: 'older', secretName: 'older-svid' });
    await sleep(1100); // creationTimestamp has whole seconds
    await createIdentity(kc, ns, 'younger', { serviceAccountName: 'younger', secretName: 'shared-svid' });
    await waitReady(kc, ns, 'older');
    await waitReady(kc, ns, 'younger');
    // The older identity now names the younger's Secret: it wins, and takes the Secret over.
    await patchSpec(kc, ns, 'older', { secretName: 'shared-svid' });
    const loser = await waitReason(kc, ns, 'younger', 'SecretConflict');
    expect(ready(loser)?.message).to.match(
      new RegExp(
        `^Secret ${ns}/shared-svid is also the secretName of WorkloadIdentity older, which is older \\(created .*\\); when identities share a secretName the oldest gets it`,
      ),
    );
    const s = await until('the Secret taken over by older', 30_000, async () => {
      const v = await secret('shared-svid');
      return v.metadata?.labels?.['identity.svid.dev/workload-identity'] === 'older' ? v : undefined;
    });
    const olderWi = await waitReady(kc, ns, 'older');
    expect(s.metadata?.ownerReferences?.filter((r) => r.controller).map((r) => r.uid)).to.deep.equal([
      olderWi.metadata.uid,
    ]);
    expect(s.metadata?.annotations?.['identity.svid.dev/spiffe-id']).to.equal(
      `spiffe://${TD}/ns/${ns}/sa/older`,
    );
    // The younger stays refused: no flapping back and forth.
    await sleep(3000);
    expect(ready(await getIdentity(kc, ns, 'younger'))?.reason).to.equal('SecretConflict');
    expect((await secret('shared-svid')).metadata?.labels?.['identity.svid.dev/workload-identity']).to.equal(
      'older',
    );
    // Once the older gives the name up, the younger gets it back.
    await patchSpec(kc, ns, 'older', { secretName: 'older-svid' });
    await until('younger Ready again', 60_000, async () => {
      const w = await getIdentity(kc, ns, 'younger');
      const v = await secret('shared-svid');
      return ready(w)?.status === 'True' &&
        v.metadata?.labels?.['identity.svid.dev/workload-identity'] === 'younger'
        ? w
        : undefined;
    });
  });

  it("refuses an identity that targets the CA Secret's name, and leaves the CA Secret alone", async () => {
    const before = await secret('ca', sys);
    await createIdentity(kc, sys, 'grab-ca', { serviceAccountName: 'grab', secretName: 'ca' });
    const w = await waitReason(kc, sys, 'grab-ca', 'SecretConflict');
    expect(ready(w)?.message).to.equal(
      `secretName ca is the operator's CA Secret (${sys}/ca); an identity may never write it: choose another secretName`,
    );
    const after = await secret('ca', sys);
    expect(after.metadata?.resourceVersion).to.equal(before.metadata?.resourceVersion);
    // The CA Secret absent: the identity still may not create it (it used to, and the CA became its SVID).
    await core.deleteNamespacedSecret({ namespace: sys, name: 'ca' });
    await patchSpec(kc, sys, 'grab-ca', { dnsNames: ['grab'] });
    await sleep(3000);
    let found: unknown;
    await secret('ca', sys).then(
      (s) => (found = s),
      () => undefined,
    );
    expect(found, 'the operator created the CA Secret for an identity').to.equal(undefined);
  });
});
