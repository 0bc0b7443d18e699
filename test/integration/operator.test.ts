import { expect } from 'chai';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa, issueSvid, loadCa, profile, svidConformance } from '../../src/pki/index.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  patchSpec,
  putCaSecret,
  readSvidSecret,
  ready,
  until,
  waitReady,
  waitReason,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'it.example.org';

describe('operator against the real API server', function () {
  this.timeout(5 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let op: OperatorProcess;
  const suffix = randomBytes(3).toString('hex');
  const ns = `op-${suffix}`;
  const ns2 = `op2-${suffix}`;
  const sys = `op-sys-${suffix}`;
  let caPem: { certPem: string; keyPem: string };

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    core = kc.makeApiClient(k8s.CoreV1Api);
    for (const n of [ns, ns2, sys]) await createNamespace(kc, n);
    caPem = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': caPem.certPem, 'tls.key': caPem.keyPem });
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      '--min-duration=10s',
      '--min-renew-before=5s',
      `--watch-namespace=${ns}`,
      `--watch-namespace=${ns2}`,
    ]);
    await op.start();
  });

  after(async () => {
    await op?.stop();
    // Key material never reaches the logs.
    const all = JSON.stringify(op?.logs ?? []) + (op?.stderr ?? '');
    expect(all).not.to.contain('PRIVATE KEY');
  });

  it('issues a valid X.509-SVID into a kubernetes.io/tls Secret and reports Ready', async () => {
    await createIdentity(kc, ns, 'payments', {
      serviceAccountName: 'payments',
      secretName: 'payments-svid',
      dnsNames: ['payments', `payments.${ns}.svc`],
    });
    const w = await waitReady(kc, ns, 'payments');
    expect(w.status?.spiffeID).to.equal(`spiffe://${TD}/ns/${ns}/sa/payments`);
    expect(w.status?.revision).to.equal(1);
    expect(w.status?.observedGeneration).to.equal(1);
    const { secret, leaf, key, ca } = await readSvidSecret(kc, ns, 'payments-svid');
    expect(secret.type).to.equal('kubernetes.io/tls');
    expect(secret.metadata?.labels?.['app.kubernetes.io/managed-by']).to.equal('svid-operator');
    expect(secret.metadata?.annotations?.['identity.svid.dev/spiffe-id']).to.equal(w.status?.spiffeID);
    expect(secret.metadata?.annotations?.['identity.svid.dev/serial-number']).to.equal(
      w.status?.serialNumber,
    );
    const owner = secret.metadata?.ownerReferences?.[0];
    expect(owner?.controller).to.equal(true);
    expect(owner?.uid).to.equal((await getIdentity(kc, ns, 'payments')).metadata.uid);
    expect(leaf.checkPrivateKey(createPrivateKey(key))).to.equal(true);
    const root = new X509Certificate(ca);
    expect(leaf.verify(root.publicKey)).to.equal(true);
    expect(profile(leaf).uris).to.deep.equal([w.status?.spiffeID]);
    for (const c of svidConformance(leaf)) expect(c.ok, c.name).to.equal(true);
    expect(leaf.serialNumber.toLowerCase()).to.equal(w.status?.serialNumber);
    for (const probe of ['/healthz', '/readyz']) {
      const res = await fetch(`http://127.0.0.1:${op.healthPort}${probe}`);
      expect(res.status, probe).to.equal(200);
      expect(await res.text()).to.equal('ok\n');
    }
    const labels = { namespace: ns, name: 'payments' };
    expect(await op.metric('svid_operator_identity_ready', labels)).to.equal(1);
    expect(await op.metric('svid_operator_certificate_expiry_timestamp_seconds', labels)).to.equal(
      Date.parse(w.status?.notAfter ?? '') / 1000,
    );
    expect(
      await op.metric('svid_operator_issuances_total', { result: 'success', cause: 'Missing' }),
    ).to.be.at.least(1);
  });

  it('renews a short-lived SVID before expiry, repeatedly, with one Secret and one status write each', async () => {
    await createIdentity(kc, ns, 'short', {
      serviceAccountName: 'short',
      secretName: 'short-svid',
      duration: '20s',
      renewBefore: '10s',
    });
    const first = await waitReady(kc, ns, 'short');
    // Count writes from the outside: every MODIFIED event on the Secret and the identity.
    const counts = { secret: 0, status: 0 };
    const watch = new k8s.Watch(kc);
    const secretWatch = await watch.watch(
      `/api/v1/namespaces/${ns}/secrets`,
      {
        fieldSelector: 'metadata.name=short-svid',
        resourceVersion: (await readSvidSecret(kc, ns, 'short-svid')).secret.metadata?.resourceVersion,
      },
      (type) => type === 'MODIFIED' && counts.secret++,
      () => undefined,
    );
    const widWatch = await watch.watch(
      `/apis/identity.svid.dev/v1alpha1/namespaces/${ns}/workloadidentities`,
      { fieldSelector: 'metadata.name=short', resourceVersion: first.metadata.resourceVersion },
      (type) => type === 'MODIFIED' && counts.status++,
      () => undefined,
    );
    const serials = [first.status?.serialNumber];
    const keys = [(await readSvidSecret(kc, ns, 'short-svid')).key];
    try {
      for (let renewal = 1; renewal <= 2; renewal++) {
        const previous = await getIdentity(kc, ns, 'short');
        const next = await waitReady(kc, ns, 'short', 30_000, previous.status?.serialNumber);
        const renewedAt = Date.now();
        // Renewed before the previous SVID expired.
        expect(renewedAt).to.be.below(Date.parse(previous.status?.notAfter ?? ''));
        serials.push(next.status?.serialNumber);
        keys.push((await readSvidSecret(kc, ns, 'short-svid')).key);
        expect(next.status?.revision).to.equal((previous.status?.revision ?? 0) + 1);
        expect(ready(next)?.reason).to.equal('Renewed');
      }
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      secretWatch.abort();
      widWatch.abort();
    }
    expect(new Set(serials).size).to.equal(3);
    expect(new Set(keys).size).to.equal(3);
    expect(counts.secret).to.equal(2);
    expect(counts.status).to.equal(2);
  });

  it('reissues when the spec changes: DNS names, key algorithm', async () => {
    const before = await getIdentity(kc, ns, 'payments');
    await patchSpec(kc, ns, 'payments', { dnsNames: [`api.${ns}.svc`] });
    const afterDns = await waitReady(kc, ns, 'payments', 30_000, before.status?.serialNumber);
    expect(profile((await readSvidSecret(kc, ns, 'payments-svid')).leaf).dnsNames).to.deep.equal([
      `api.${ns}.svc`,
    ]);
    expect(afterDns.status?.observedGeneration).to.equal(2);
    await patchSpec(kc, ns, 'payments', { privateKey: { algorithm: 'Ed25519' } });
    await waitReady(kc, ns, 'payments', 30_000, afterDns.status?.serialNumber);
    expect((await readSvidSecret(kc, ns, 'payments-svid')).leaf.publicKey.asymmetricKeyType).to.equal(
      'ed25519',
    );
  });

  it('restores a deleted or corrupted Secret, and reissues when tls.key is swapped', async () => {
    const serial = async () => (await getIdentity(kc, ns, 'payments')).status?.serialNumber;
    let last = await serial();
    await core.deleteNamespacedSecret({ namespace: ns, name: 'payments-svid' });
    last = (await waitReady(kc, ns, 'payments', 30_000, last)).status?.serialNumber;
    await readSvidSecret(kc, ns, 'payments-svid');

    const corrupt = (await readSvidSecret(kc, ns, 'payments-svid')).secret;
    corrupt.data = {
      ...corrupt.data,
      'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n').toString(
        'base64',
      ),
    };
    await core.replaceNamespacedSecret({ namespace: ns, name: 'payments-svid', body: corrupt });
    last = (await waitReady(kc, ns, 'payments', 30_000, last)).status?.serialNumber;
    expect((await readSvidSecret(kc, ns, 'payments-svid')).leaf.serialNumber.toLowerCase()).to.equal(last);

    const ca = await loadCa(caPem);
    const other = await issueSvid(ca, {
      spiffeId: `spiffe://${TD}/ns/${ns}/sa/payments`,
      durationSeconds: 3600,
    });
    const swapped = (await readSvidSecret(kc, ns, 'payments-svid')).secret;
    swapped.data = { ...swapped.data, 'tls.key': Buffer.from(other.keyPem).toString('base64') };
    await core.replaceNamespacedSecret({ namespace: ns, name: 'payments-svid', body: swapped });
    await waitReady(kc, ns, 'payments', 30_000, last);
    const now = await readSvidSecret(kc, ns, 'payments-svid');
    expect(now.leaf.checkPrivateKey(createPrivateKey(now.key))).to.equal(true);
  });

  it('never touches a Secret it does not own and reports SecretConflict', async () => {
    const mine = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'taken' }, stringData: { 'tls.crt': 'not yours' } },
    });
    await createIdentity(kc, ns, 'conflict', { serviceAccountName: 'conflict', secretName: 'taken' });
    const w = await waitReason(kc, ns, 'conflict', 'SecretConflict');
    expect(ready(w)?.status).to.equal('False');
    expect(ready(w)?.message).to.contain(
      `Secret ${ns}/taken exists and is not managed by this WorkloadIdentity`,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const after = await core.readNamespacedSecret({ namespace: ns, name: 'taken' });
    expect(after.metadata?.resourceVersion).to.equal(mine.metadata?.resourceVersion);
    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: 'involvedObject.name=conflict',
    });
    expect(events.items.map((e) => e.reason)).to.include('SecretConflict');
  });

  it('refuses DNS names of another namespace with PolicyViolation', async () => {
    await createIdentity(kc, ns, 'greedy', {
      serviceAccountName: 'greedy',
      secretName: 'greedy-svid',
      dnsNames: ['greedy', `payments.${ns2}.svc`],
    });
    const w = await waitReason(kc, ns, 'greedy', 'PolicyViolation');
    expect(ready(w)?.message).to.contain(`belongs to namespace "${ns2}"`);
    await core.readNamespacedSecret({ namespace: ns, name: 'greedy-svid' }).then(
      () => expect.fail('a Secret was written despite the policy violation'),
      (err: k8s.ApiException<unknown>) => expect(err.code).to.equal(404),
    );
  });

  it('gives the same service account in two namespaces different SPIFFE IDs', async () => {
    await createIdentity(kc, ns2, 'payments', {
      serviceAccountName: 'payments',
      secretName: 'payments-svid',
    });
    const a = await getIdentity(kc, ns, 'payments');
    const b = await waitReady(kc, ns2, 'payments');
    expect(b.status?.spiffeID).to.equal(`spiffe://${TD}/ns/${ns2}/sa/payments`);
    expect(a.status?.spiffeID).to.not.equal(b.status?.spiffeID);
    expect(profile((await readSvidSecret(kc, ns2, 'payments-svid')).leaf).uris).to.deep.equal([
      b.status?.spiffeID,
    ]);
  });

  it('has the API server refuse invalid specs with the CEL message', async () => {
    const refused = (spec: Record<string, unknown>) =>
      createIdentity(kc, ns, `bad-${randomBytes(2).toString('hex')}`, spec).then(
        () => expect.fail('accepted'),
        (err: k8s.ApiException<string>) => String(err.body),
      );
    expect(
      await refused({ serviceAccountName: 'a', secretName: 's', duration: '1h', renewBefore: '2h' }),
    ).to.contain('renewBefore must be at most half of duration');
    expect(
      await refused({
        serviceAccountName: 'a',
        secretName: 's',
        privateKey: { algorithm: 'RSA', size: 1024 },
      }),
    ).to.contain('RSA keys have size 2048, 3072 or 4096');
    expect(await refused({ serviceAccountName: 'A_b', secretName: 's' })).to.contain(
      'serviceAccountName must be a lowercase RFC 1123 name',
    );
  });

  it('writes nothing after a restart when everything is up to date', async () => {
    await patchSpec(kc, ns, 'short', { duration: '1h', renewBefore: '20m' });
    await until('short renewed for 1h', 60_000, async () => {
      const w = await getIdentity(kc, ns, 'short');
      return w.status?.observedGeneration === 2 && ready(w)?.status === 'True' ? w : undefined;
    });
    const snapshot = async () => {
      const secrets = await core.listNamespacedSecret({ namespace: ns });
      const ids = (await kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({
        group: 'identity.svid.dev',
        version: 'v1alpha1',
        namespace: ns,
        plural: 'workloadidentities',
      })) as { items: { metadata: { name: string; resourceVersion: string } }[] };
      return [
        ...secrets.items.map((s) => `secret/${s.metadata?.name}@${s.metadata?.resourceVersion}`),
        ...ids.items.map((i) => `wid/${i.metadata.name}@${i.metadata.resourceVersion}`),
      ].sort();
    };
    // Up to date first: the running operator has finished its writes (no object changed for 3 s), so what
    // the restarted one does is all that the comparison below can see.
    let before = await snapshot();
    for (let quiet = 0; quiet < 2;) {
      await new Promise((r) => setTimeout(r, 1500));
      const now = await snapshot();
      quiet = JSON.stringify(now) === JSON.stringify(before) ? quiet + 1 : 0;
      before = now;
    }
    await op.stop();
    const from = op.logs.length;
    await op.start();
    await op.waitForLog((l) => l.message === 'caches synced; reconciling', 10_000, from);
    await new Promise((r) => setTimeout(r, 3000));
    const after = await snapshot();
    // On a failure, what the restarted operator logged says which identity it wrote and why.
    const restartLog = () => JSON.stringify(op.logs.slice(from), null, 1).slice(0, 20_000);
    expect(after, restartLog()).to.deep.equal(before);
    expect(await op.metric('svid_operator_api_writes_total', { kind: 'secret' })).to.equal(0);
    expect(await op.metric('svid_operator_api_writes_total', { kind: 'status' })).to.equal(0);
  });

  it('resumes after an API server restart and keeps renewing', async () => {
    await createIdentity(kc, ns, 'survivor', {
      serviceAccountName: 'survivor',
      secretName: 'survivor-svid',
      duration: '20s',
      renewBefore: '10s',
    });
    const first = await waitReady(kc, ns, 'survivor');
    await cp.restartApiServer();
    const renewed = await waitReady(kc, ns, 'survivor', 60_000, first.status?.serialNumber);
    const again = await waitReady(kc, ns, 'survivor', 60_000, renewed.status?.serialNumber);
    expect(
      new Set([first.status?.serialNumber, renewed.status?.serialNumber, again.status?.serialNumber]).size,
    ).to.equal(3);
  });
});
