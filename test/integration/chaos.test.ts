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
  wid,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import type { WorkloadIdentity } from '../../src/reconcilers/workload-identity/types.ts';
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
  /** Each identity's SVID serial as its Secret holds it. */
  serials: Map<string, string>;
}

/**
 * Every identity Ready with a valid SVID in exactly its own Secret, and no managed Secret without an owner,
 * judged on one consistent snapshot: the identities' list, then the managed Secrets as of the very
 * resourceVersion of that list (resourceVersionMatch=Exact), so a renewal between the two reads cannot look
 * like a status that disagrees with its Secret. (The identities were read one GET at a time before the
 * Secrets: on a loaded machine that took seconds, the 30 identities of the API-fault test renew every ~10 s,
 * and a renewal landing in that gap made "status serial differs from the Secret's" on almost every poll, so
 * the test timed out at load 8-17 whatever the operator did.) An identity's status says Ready only after its
 * Secret was written, so in one snapshot a Ready status's serial is its Secret's unless a renewal is between
 * its two writes at that very revision.
 */
async function audit(kc: k8s.KubeConfig, ns: string, caPem: string, names: string[]): Promise<Outcome> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const caCert = new X509Certificate(caPem);
  const list = (await wid(kc).listNamespacedCustomObject({
    group: 'identity.svid.dev',
    version: 'v1alpha1',
    plural: 'workloadidentities',
    namespace: ns,
  })) as { items: WorkloadIdentity[]; metadata: { resourceVersion: string } };
  const identities = new Map(list.items.map((w) => [w.metadata.name, w]));
  const managed = await core.listNamespacedSecret({
    namespace: ns,
    labelSelector: 'app.kubernetes.io/managed-by=svid-operator',
    resourceVersion: list.metadata.resourceVersion,
    resourceVersionMatch: 'Exact',
  });
  const problems: string[] = [];
  const serials = new Map<string, string>();
  const byName = new Map(managed.items.map((s) => [s.metadata?.name ?? '', s]));
  let readyCount = 0;
  for (const name of names) {
    const w = identities.get(name);
    if (!w) {
      problems.push(`${name}: no WorkloadIdentity`);
      continue;
    }
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
    serials.set(name, leaf.serialNumber.toLowerCase());
    if (leaf.serialNumber.toLowerCase() !== w.status?.serialNumber)
      problems.push(`${name}: status serial differs from the Secret's`);
  }
  const expected = new Set(names.map((n) => `${n}-svid`));
  for (const name of byName.keys())
    if (!expected.has(name)) problems.push(`orphaned or duplicate Secret ${name}`);
  return { ready: readyCount, secrets: managed.items.length, problems, serials };
}

/**
 * The problems that are never a moment's state while writes are retried: everything but an identity not
 * Ready or without its Secret yet, and a status that lags its Secret (written after it, so retried later).
 */
function lasting(o: Outcome): string[] {
  return o.problems.filter((p) => !/ not Ready|: no Secret$|: status serial differs/.test(p));
}

/** The outcome when it has no problem and at least `ready` Ready; else throws what is wrong (until reports it). */
function consistent(o: Outcome, ready: number): Outcome {
  if (o.ready >= ready && o.problems.length === 0) return o;
  throw new Error(`${o.ready} Ready, ${o.problems.length} problems: ${o.problems.slice(0, 5).join('; ')}`);
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
      // While the faults last, every snapshot may show statuses lagging their Secrets (a status write is
      // retried after its Secret's), identities not Ready yet, but nothing else: a wrong, foreign or
      // orphaned SVID seen on any look fails the test.
      const seen: string[] = [];
      const check = (o: Outcome): Outcome => {
        seen.push(...lasting(o));
        return o;
      };
      const issued = await until('all 30 issued through the faults', 120_000, async () => {
        const o = check(await audit(kc, ns, caPem.certPem, names));
        return o.ready === names.length && o.serials.size === names.length ? o : undefined;
      });
      expect(issued.secrets).to.equal(30);
      expect(seen, 'problems seen while issuing').to.deep.equal([]);
      // Renewals go through the same faults (the 409s hit Secret updates, the 503s their status writes):
      // each identity renewed at least once, its Secret sound on every look.
      const renewed = await until('all 30 renewed through the faults', 90_000, async () => {
        const o = check(await audit(kc, ns, caPem.certPem, names));
        return names.every((n) => o.serials.get(n) && o.serials.get(n) !== issued.serials.get(n))
          ? o
          : undefined;
      });
      expect(renewed.ready).to.equal(30);
      expect(seen, 'problems seen while renewing').to.deep.equal([]);
      // Faults off: whatever was being retried catches up, nothing was lost on the way. (With the faults on
      // there is no moment every status is sure to match: 30 identities renew ~3 times a second, a third of
      // status writes fail, and each retry waits 1, 2, 4 s..., so one or two statuses lag at any instant.)
      proxy.clearRules();
      const final = await until('all consistent once the faults stop', 60_000, async () =>
        consistent(await audit(kc, ns, caPem.certPem, names), names.length),
      );
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
