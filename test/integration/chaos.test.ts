import { expect } from 'chai';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa, profile } from '../../src/pki/index.ts';
import { FaultProxy } from '../harness/fault-proxy.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  putCaSecret,
  ready,
  until,
  waitReady,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'chaos.example.org';

/** mulberry32: a seeded PRNG, so every run kills the operator at the same points. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome {
  ready: number;
  secrets: number;
  problems: string[];
}

/** Every identity Ready with a valid SVID in exactly its own Secret, and no managed Secret without an owner. */
async function audit(kc: k8s.KubeConfig, ns: string, caPem: string, names: string[]): Promise<Outcome> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const caCert = new X509Certificate(caPem);
  // Identities first, Secrets after: an identity's status says Ready only after its Secret was written, so
  // every Secret a Ready status refers to is in the later list (listing first raced with the last issuances).
  const identities = new Map<string, Awaited<ReturnType<typeof getIdentity>>>();
  for (const name of names) identities.set(name, await getIdentity(kc, ns, name));
  const managed = await core.listNamespacedSecret({
    namespace: ns,
    labelSelector: 'app.kubernetes.io/managed-by=svid-operator',
  });
  const problems: string[] = [];
  const byName = new Map(managed.items.map((s) => [s.metadata?.name ?? '', s]));
  let readyCount = 0;
  for (const name of names) {
    const w = identities.get(name) as Awaited<ReturnType<typeof getIdentity>>;
    if (ready(w)?.status === 'True') readyCount++;
    else problems.push(`${name} not Ready: ${ready(w)?.reason} ${ready(w)?.message}`);
    const s = byName.get(`${name}-svid`);
    if (!s) {
      problems.push(`${name}: no Secret`);
      continue;
    }
    if (s.metadata?.ownerReferences?.[0]?.uid !== w.metadata.uid)
      problems.push(`${name}: Secret owned by someone else`);
    const text = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString();
    const leaf = new X509Certificate(text('tls.crt'));
    if (!leaf.verify(caCert.publicKey)) problems.push(`${name}: SVID not from the CA`);
    if (!leaf.checkPrivateKey(createPrivateKey(text('tls.key')))) problems.push(`${name}: key mismatch`);
    if (profile(leaf).uris[0] !== `spiffe://${TD}/ns/${ns}/sa/${name}`)
      problems.push(`${name}: wrong SPIFFE ID`);
    if (leaf.serialNumber.toLowerCase() !== w.status?.serialNumber)
      problems.push(`${name}: status serial differs from the Secret's`);
  }
  const expected = new Set(names.map((n) => `${n}-svid`));
  for (const name of byName.keys())
    if (!expected.has(name)) problems.push(`orphaned or duplicate Secret ${name}`);
  return { ready: readyCount, secrets: managed.items.length, problems };
}

describe('chaos: kills, outages, failover and API errors', function () {
  this.timeout(10 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let caPem: { certPem: string; keyPem: string };
  const suffix = randomBytes(3).toString('hex');
  const sys = `chaos-sys-${suffix}`;
  let tmp: string;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'svid-chaos-'));
    await createNamespace(kc, sys);
    caPem = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': caPem.certPem, 'tls.key': caPem.keyPem });
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  const args = (ns: string) => [
    `--trust-domain=${TD}`,
    `--ca-secret=${sys}/ca`,
    `--watch-namespace=${ns}`,
    '--min-duration=10s',
    // Seconds-long SVIDs: renewBefore below the 1m default minimum.
    '--min-renew-before=5s',
  ];

  it('loses nothing when the operator is SIGKILLed 20 times during a wave of 200 issuances', async () => {
    const ns = `chaos-kill-${suffix}`;
    await createNamespace(kc, ns);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const foreign = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'someone-elses' }, stringData: { x: 'y' } },
    });
    const names = Array.from({ length: 200 }, (_, i) => `w${i}`);
    for (const n of names)
      await createIdentity(kc, ns, n, { serviceAccountName: n, secretName: `${n}-svid` });
    await createIdentity(kc, ns, 'squatter', { serviceAccountName: 'squatter', secretName: 'someone-elses' });
    const random = seeded(20261122);
    const kills: number[] = [];
    for (let i = 0; i < 20; i++) {
      const op = new OperatorProcess(cp.kubeconfigPath, [
        ...args(ns),
        '--issuance-rate=100',
        '--concurrency=8',
      ]);
      await op.start(null);
      const at = Math.floor(300 + random() * 2200);
      kills.push(at);
      await new Promise((r) => setTimeout(r, at));
      await op.stop('SIGKILL');
    }
    const op = new OperatorProcess(cp.kubeconfigPath, [
      ...args(ns),
      '--issuance-rate=100',
      '--concurrency=8',
    ]);
    await op.start();
    try {
      const outcome = await until('all 200 Ready', 180_000, async () => {
        const o = await audit(kc, ns, caPem.certPem, names);
        return o.ready === names.length ? o : undefined;
      });
      expect(outcome.problems).to.deep.equal([]);
      expect(outcome.secrets).to.equal(200);
      const after = await core.readNamespacedSecret({ namespace: ns, name: 'someone-elses' });
      expect(after.metadata?.resourceVersion).to.equal(foreign.metadata?.resourceVersion);
      expect(ready(await getIdentity(kc, ns, 'squatter'))?.reason).to.equal('SecretConflict');
      console.log(`      kill points (ms after start): ${kills.join(', ')}`);
    } finally {
      await op.stop();
    }
  });

  it('recovers from a 30 s API server outage without a restart and renews before expiry', async () => {
    const ns = `chaos-outage-${suffix}`;
    await createNamespace(kc, ns);
    const op = new OperatorProcess(cp.kubeconfigPath, args(ns));
    await op.start();
    try {
      await createIdentity(kc, ns, 'outage', {
        serviceAccountName: 'outage',
        secretName: 'outage-svid',
        duration: '60s',
        renewBefore: '30s',
      });
      const first = await waitReady(kc, ns, 'outage');
      // Renewal is due 27-30 s after issuance (at most half the lifetime before expiry, minus jitter); the
      // outage covers that moment.
      await cp.stopApiServer();
      await new Promise((r) => setTimeout(r, 30_000));
      await cp.startApiServer();
      const renewed = await waitReady(kc, ns, 'outage', 30_000, first.status?.serialNumber);
      expect(Date.now()).to.be.below(Date.parse(first.status?.notAfter ?? ''));
      expect(renewed.status?.revision).to.equal(2);
      expect(op.pid).to.be.a('number');
      expect(await op.metric('svid_operator_issuances_total', { result: 'success' })).to.be.at.least(2);
    } finally {
      await op.stop();
    }
  });

  it('lets the standby renew a due SVID when the leader is killed', async () => {
    const ns = `chaos-leader-${suffix}`;
    await createNamespace(kc, ns);
    const replica = (name: string) =>
      new OperatorProcess(
        cp.kubeconfigPath,
        [...args(ns), '--leader-elect=true', `--leader-election-namespace=${ns}`],
        { POD_NAME: name },
      );
    const a = replica('replica-a');
    const b = replica('replica-b');
    await a.start();
    await b.start('health probes listening');
    try {
      await createIdentity(kc, ns, 'failover', {
        serviceAccountName: 'failover',
        secretName: 'failover-svid',
        duration: '60s',
        renewBefore: '30s',
      });
      const first = await waitReady(kc, ns, 'failover');
      expect(b.logs.some((l) => l.message === 'became leader')).to.equal(false);
      await a.stop('SIGKILL');
      // The standby takes the Lease once it expires (15 s) and renews at renewalTime (~27-30 s after issuance).
      const renewed = await waitReady(kc, ns, 'failover', 60_000, first.status?.serialNumber);
      expect(Date.now()).to.be.below(Date.parse(first.status?.notAfter ?? ''));
      expect(b.logs.some((l) => l.message === 'became leader')).to.equal(true);
      // The standby logs the renewal once its status write has answered, which can be after this test read
      // the new status from the API server: wait for the line rather than expect it already read.
      const line = await b.waitForLog(
        (l) => l.message === 'renewed SVID' && l.serial === renewed.status?.serialNumber,
        10_000,
      );
      expect(line.identity).to.equal(`${ns}/failover`);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('retries 409, 429 and 5xx answers injected by a proxy and loses nothing', async () => {
    const ns = `chaos-api-${suffix}`;
    await createNamespace(kc, ns);
    const proxy = await FaultProxy.start({
      upstream: cp.apiServerUrl,
      pkiDir: path.join(cp.dir, 'pki'),
      random: seeded(7),
      rules: [
        {
          name: 'secret-update-409',
          method: 'PATCH',
          path: /\/secrets\//,
          fault: { kind: 'status', code: 409 },
          probability: 0.3,
        },
        {
          name: 'secret-create-429',
          method: 'POST',
          path: /\/secrets/,
          fault: { kind: 'status', code: 429, retryAfterSeconds: 1 },
          probability: 0.3,
        },
        {
          name: 'status-503',
          method: 'PATCH',
          path: /\/status/,
          fault: { kind: 'status', code: 503 },
          probability: 0.3,
        },
        {
          name: 'list-500',
          method: 'GET',
          path: /workloadidentities(\?|$)(?!.*watch=true)/,
          fault: { kind: 'status', code: 500 },
          times: 2,
        },
      ],
    });
    const kubeconfig = path.join(tmp, 'proxy.kubeconfig');
    await proxy.writeKubeconfig(kubeconfig);
    const op = new OperatorProcess(kubeconfig, [...args(ns), '--issuance-rate=50']);
    try {
      await op.start();
      const names = Array.from({ length: 30 }, (_, i) => `p${i}`);
      for (const n of names)
        await createIdentity(kc, ns, n, {
          serviceAccountName: n,
          secretName: `${n}-svid`,
          duration: '20s',
          renewBefore: '10s',
        });
      const outcome = await until('all 30 Ready through the faults', 120_000, async () => {
        const o = await audit(kc, ns, caPem.certPem, names);
        return o.ready === names.length && o.problems.length === 0 ? o : undefined;
      });
      expect(outcome.secrets).to.equal(30);
      // Renewals go through the same faults (the 409s hit updates).
      await new Promise((r) => setTimeout(r, 15_000));
      const final = await until('all renewed and consistent', 60_000, async () => {
        const o = await audit(kc, ns, caPem.certPem, names);
        return o.problems.length === 0 ? o : undefined;
      });
      expect(final.ready).to.equal(30);
      const injected = Object.fromEntries(proxy.stats().rules.map((r) => [r.name, r.injected]));
      for (const rule of ['secret-update-409', 'secret-create-429', 'status-503', 'list-500']) {
        expect(injected[rule], `${rule} injected`).to.be.greaterThan(0);
      }
      console.log(`      injected: ${JSON.stringify(injected)}`);
    } finally {
      await op.stop();
      await proxy.close();
    }
  });
  it('backs off a failing issuance: its own status write coming back through the watch does not retry it early', async () => {
    const ns = `chaos-403-${suffix}`;
    await createNamespace(kc, ns);
    const proxy = await FaultProxy.start({
      upstream: cp.apiServerUrl,
      pkiDir: path.join(cp.dir, 'pki'),
      rules: [
        {
          name: 'secret-create-403',
          method: 'POST',
          path: new RegExp(`/namespaces/${ns}/secrets`),
          fault: { kind: 'status', code: 403, message: 'secrets is forbidden (injected)' },
        },
      ],
    });
    const kubeconfig = path.join(tmp, 'proxy-403.kubeconfig');
    await proxy.writeKubeconfig(kubeconfig);
    const op = new OperatorProcess(kubeconfig, args(ns));
    try {
      await op.start();
      await createIdentity(kc, ns, 'denied', { serviceAccountName: 'denied', secretName: 'denied-svid' });
      await until('the first failure reported', 30_000, async () =>
        proxy.stats().rules[0]?.injected ? true : undefined,
      );
      const start = Date.now();
      await new Promise((r) => setTimeout(r, 12_000));
      const seconds = (Date.now() - start) / 1000;
      const attempts = proxy.stats().rules[0]?.injected ?? 0;
      // Backoff 1, 2, 4, 8 s: at most 5 attempts in ~12 s plus the wait for the first. Before the gate, every
      // failure's status write echoed back through the watch and re-ran it at once (~10 a second).
      console.log(`      403 attempts: ${attempts} in ${seconds.toFixed(1)} s after the first`);
      expect(attempts).to.be.at.most(6);
      const wi = await getIdentity(kc, ns, 'denied');
      const ready = wi.status?.conditions?.find((c) => c.type === 'Ready');
      expect(ready).to.include({ status: 'False', reason: 'IssuanceFailed' });
      expect(ready?.message).to.contain('forbidden');
      expect(wi.status?.failedIssuanceAttempts ?? 0).to.be.at.most(6);
    } finally {
      await op.stop();
      await proxy.close();
    }
  });
});
