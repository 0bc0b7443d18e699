// The operator against a real local control plane (etcd, kube-apiserver and kube-controller-manager from
// hack/lib, all sharing this machine with the operator and this script), the operator as a child process
// with its default rate limits. In one run, in this order:
//  1. time to Ready for a wave of identities created as fast as the API server accepts them, and the
//     API writes that wave cost per issued SVID;
//  2. a restart with everything up to date, and the writes it made;
//  3. the writes per renewal, from short-lived identities renewing twice;
//  4. a CA change: time until every identity holds an SVID from the new CA, and the peak write rate;
//  5. resident memory with the full number of identities Ready, then with as many unrelated Secrets added.
// The operator counts its own writes (svid_operator_api_writes_total); "writes" are Secret and status
// writes, the Events it records are reported beside them.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { ControlPlane } from '../hack/lib/control-plane.ts';
import { installCrds } from '../hack/lib/crds.ts';
import { identitySource } from '../src/reconcilers/workload-identity/controller.ts';
import { Informer, keyOf } from '../src/controller-runtime/informer.ts';
import { GROUP, PLURAL, VERSION, type WorkloadIdentity } from '../src/reconcilers/workload-identity/types.ts';
import { PooledKubeConfig } from '../src/kube/pooled-kubeconfig.ts';
import { createSelfSignedCa } from '../src/pki/index.ts';
import { createIdentity, createNamespace, isReady, putCaSecret } from '../test/harness/identities.ts';
import { OperatorProcess, sumMetric } from '../test/harness/operator-process.ts';
import { benchPodCertificates, emptyPodCertResult, type PodCertBenchResult } from './pod-certificates.ts';
import { median, percentile } from './stats.ts';

export interface ClusterSizes {
  /** Identities in the time-to-Ready wave, also the ones re-issued on the CA change. */
  wave: number;
  /** Identities Ready when memory is measured (the wave included). */
  scaleTo: number;
  /** Unrelated Secrets added for the second memory figure. */
  unrelatedSecrets: number;
  /** Short-lived identities whose renewals are counted. */
  renewing: number;
}

export interface ClusterResult {
  ttr: {
    p50Ms: number | null;
    p99Ms: number | null;
    allReadySeconds: number | null;
    identities: number;
    /** Where the time went: CPU seconds each process used from the first create until all were Ready. */
    cpuSeconds: Record<string, number> | null;
  };
  writes: {
    perIssue: number | null;
    perRenewal: number | null;
    afterRestart: number | null;
    eventsPerIssue: number | null;
    eventsPerRenewal: number | null;
    eventsAfterRestart: number | null;
  };
  memory: {
    rssMb10k: number | null;
    rssMb10kWithUnrelatedSecrets: number | null;
    identities: number;
    unrelatedSecrets: number;
  };
  caRotation: { seconds: number | null; peakWritesPerSecond: number | null; identities: number };
  podCertificates: PodCertBenchResult;
}

const TD = 'bench.example.org';
const SYSTEM_NS = 'svid-system';
// Default rate limits and concurrency; only the shortest lifetime (and renewBefore) is lowered, for the
// renewal phase, and the CA rotation's propagation delay (a fixed wait before re-issuing, 2m by default,
// added to the rotation time whatever the operator does) to 10 s.
export const OPERATOR_ARGS = [
  `--trust-domain=${TD}`,
  `--ca-secret=${SYSTEM_NS}/ca`,
  '--min-duration=10s',
  '--min-renew-before=5s',
  '--ca-propagation-delay=10s',
];
// The operator as the image runs it (Dockerfile ENV and ENTRYPOINT): compiled JavaScript, the same node
// flags and malloc setting.
const OPERATOR_LAUNCH = {
  script: fileURLToPath(new URL('../dist/src/operator/main.js', import.meta.url)),
  nodeArgs: ['--optimize-for-size', '--max-semi-space-size=2'],
};
const OPERATOR_ENV = { MALLOC_ARENA_MAX: '2' };

/** Compiles dist/ first, so the operator measured is the code in this tree. */
async function build(): Promise<void> {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const project = fileURLToPath(new URL('../tsconfig.build.json', import.meta.url));
  // The operator imports the mTLS library package, whose dist/ the image ships too (npm run build order).
  const library = fileURLToPath(new URL('../packages/mtls/tsconfig.json', import.meta.url));
  await promisify(execFile)(process.execPath, [tsc, '-p', library]);
  await promisify(execFile)(process.execPath, [tsc, '-p', project]);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const quiet = { error: () => undefined, warn: () => undefined, debug: () => undefined };

/** Every WorkloadIdentity in the cluster, as the operator would see them, with arrival times. */
class IdentityWatch {
  private readonly informer: Informer<WorkloadIdentity>;
  private readonly waiters: {
    keys: Set<string>;
    test: (w: WorkloadIdentity) => boolean;
    seen: Map<string, number>;
    done: () => void;
  }[] = [];

  constructor(kc: k8s.KubeConfig) {
    this.informer = new Informer(
      kc,
      'bench',
      identitySource(kc.makeApiClient(k8s.CustomObjectsApi), ''),
      quiet,
    );
    this.informer.on((event, w) => {
      if (event !== 'upsert') return;
      const now = performance.now();
      for (const waiter of this.waiters) this.check(waiter, keyOf(w), w, now);
    });
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.synced;
  }

  stop(): void {
    this.informer.stop();
  }

  get(key: string): WorkloadIdentity | undefined {
    return this.informer.get(key);
  }

  /** When each of `keys` first satisfied `test` (objects that already do count from now). */
  when(
    keys: string[],
    test: (w: WorkloadIdentity) => boolean,
    timeoutMs: number,
  ): Promise<Map<string, number>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = [...waiter.keys].filter((k) => !waiter.seen.has(k));
        reject(
          new Error(`${missing.length} identities not there within ${timeoutMs} ms, e.g. ${missing[0]}`),
        );
      }, timeoutMs);
      const waiter = {
        keys: new Set(keys),
        test,
        seen: new Map<string, number>(),
        done: () => {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(waiter.seen);
        },
      };
      this.waiters.push(waiter);
      const now = performance.now();
      for (const key of keys) {
        const w = this.informer.get(key);
        if (w) this.check(waiter, key, w, now);
      }
      if (keys.length === 0) waiter.done();
    });
  }

  private check(waiter: (typeof this.waiters)[number], key: string, w: WorkloadIdentity, now: number): void {
    if (!waiter.keys.has(key) || waiter.seen.has(key) || !waiter.test(w)) return;
    waiter.seen.set(key, now);
    if (waiter.seen.size === waiter.keys.size) waiter.done();
  }
}

/** Runs `fn` over `items`, `concurrency` at a time: as fast as the API server accepts, without a flood of sockets. */
async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** The operator's own counters: Secret+status writes, Event writes, successful issuances, reconciles. */
async function counters(op: OperatorProcess) {
  const text = await op.metrics();
  const sum = (name: string, labels: Record<string, string> = {}) => sumMetric(text, name, labels);
  return {
    writes:
      sum('svid_operator_api_writes_total', { kind: 'secret' }) +
      sum('svid_operator_api_writes_total', { kind: 'status' }),
    events: sum('svid_operator_api_writes_total', { kind: 'event' }),
    issued: sum('svid_operator_issuances_total', { result: 'success' }),
    reconciles: sum('svid_operator_workqueue_latency_seconds_count'),
    depth: sum('svid_operator_workqueue_depth'),
  };
}
type Counters = Awaited<ReturnType<typeof counters>>;

const perItem = (writes: number, items: number) => (items > 0 ? writes / items : null);

/** CPU seconds (user + system) a process has used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the line.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
// USER_HZ, 100 on every Linux architecture Node runs on.
const CLOCK_TICKS = 100;

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) / 1024;
}

/** The median of several samples a second apart, once the operator has been idle for a while. */
async function settledRssMb(op: OperatorProcess, samples: number): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(await rssMb(op.pid ?? 0));
    await sleep(1000);
  }
  return median(values);
}

/** Waits until the operator's queue is empty and its counters have not moved for `quietMs`. */
async function waitIdle(op: OperatorProcess, quietMs: number, timeoutMs: number): Promise<Counters> {
  const deadline = Date.now() + timeoutMs;
  let last = await counters(op);
  let since = Date.now();
  for (;;) {
    await sleep(500);
    const now = await counters(op);
    const moved =
      now.writes !== last.writes || now.events !== last.events || now.reconciles !== last.reconciles;
    if (moved || now.depth > 0) since = Date.now();
    last = now;
    if (Date.now() - since >= quietMs) return now;
    if (Date.now() > deadline) throw new Error(`the operator was still busy after ${timeoutMs} ms`);
  }
}

function identitySpec(name: string, extra: Record<string, unknown> = {}) {
  return { serviceAccountName: name, secretName: `${name}-svid`, ...extra };
}

export function emptyClusterResult(sizes: ClusterSizes): ClusterResult {
  return {
    ttr: { p50Ms: null, p99Ms: null, allReadySeconds: null, identities: sizes.wave, cpuSeconds: null },
    writes: {
      perIssue: null,
      perRenewal: null,
      afterRestart: null,
      eventsPerIssue: null,
      eventsPerRenewal: null,
      eventsAfterRestart: null,
    },
    memory: {
      rssMb10k: null,
      rssMb10kWithUnrelatedSecrets: null,
      identities: sizes.scaleTo,
      unrelatedSecrets: sizes.unrelatedSecrets,
    },
    caRotation: { seconds: null, peakWritesPerSecond: null, identities: sizes.wave },
    podCertificates: emptyPodCertResult(sizes.wave),
  };
}

/** Fills `result` phase by phase, so the figures measured before a failure survive it. */
export async function benchCluster(
  sizes: ClusterSizes,
  result: ClusterResult,
  log: (line: string) => void,
): Promise<void> {
  await build();
  const cp = await ControlPlane.start({ podCertificates: true });
  const kc = new PooledKubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const watch = new IdentityWatch(kc);
  let op = new OperatorProcess(cp.kubeconfigPath, OPERATOR_ARGS, OPERATOR_ENV, OPERATOR_LAUNCH);
  try {
    await installCrds(kc);
    for (const ns of [SYSTEM_NS, 'wave', 'renew', 'scale', 'unrelated']) await createNamespace(kc, ns);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, SYSTEM_NS, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    await op.start();
    await watch.start();
    const createWave = async (ns: string, names: string[], extra: Record<string, unknown> = {}) => {
      const started = new Map<string, number>();
      let lastCreated = 0;
      await pool(names, 16, async (name) => {
        started.set(`${ns}/${name}`, performance.now());
        await createIdentity(kc, ns, name, identitySpec(name, extra));
        lastCreated = performance.now();
      });
      return { started, lastCreated };
    };
    const names = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);

    // 1. Time to Ready.
    log(`cluster: creating ${sizes.wave} identities`);
    const waveNames = names('w', sizes.wave);
    const waveKeys = waveNames.map((n) => `wave/${n}`);
    const before = await counters(op);
    const readyWave = watch.when(waveKeys, isReady, 30 * 60_000);
    const { pids } = cp.info();
    const processes: Record<string, number> = {
      operator: op.pid ?? 0,
      'kube-apiserver': pids.apiServer,
      etcd: pids.etcd,
      ...(pids.controllerManager ? { 'kube-controller-manager': pids.controllerManager } : {}),
      'this script (creates, watch)': process.pid,
    };
    const cpuBefore = await Promise.all(Object.values(processes).map(cpuSeconds));
    const t0 = performance.now();
    const { started, lastCreated } = await createWave('wave', waveNames);
    log(`cluster: created ${sizes.wave} in ${((lastCreated - t0) / 1000).toFixed(1)} s; waiting for Ready`);
    const readyAt = await readyWave;
    const cpuAfter = await Promise.all(Object.values(processes).map(cpuSeconds));
    result.ttr.cpuSeconds = Object.fromEntries(
      Object.keys(processes).map((name, i) => [name, (cpuAfter[i] ?? 0) - (cpuBefore[i] ?? 0)]),
    );
    const ttrs = waveKeys.map((k) => (readyAt.get(k) ?? 0) - (started.get(k) ?? 0));
    result.ttr.p50Ms = percentile(ttrs, 50);
    result.ttr.p99Ms = percentile(ttrs, 99);
    result.ttr.allReadySeconds = (Math.max(...readyAt.values()) - lastCreated) / 1000;
    const afterWave = await waitIdle(op, 3000, 10 * 60_000);
    const issuedInWave = afterWave.issued - before.issued;
    result.writes.perIssue = perItem(afterWave.writes - before.writes, issuedInWave);
    result.writes.eventsPerIssue = perItem(afterWave.events - before.events, issuedInWave);
    log(`cluster: ${JSON.stringify({ ttr: result.ttr, perIssue: result.writes.perIssue })}`);
    // 1b. As many PodCertificateRequests, answered by a second operator process with the signer.
    const podCertOperator = { operatorEnv: OPERATOR_ENV, operatorLaunch: OPERATOR_LAUNCH, log };
    await benchPodCertificates(
      { cp, kc, requests: sizes.wave, operatorArgs: OPERATOR_ARGS, ...podCertOperator },
      result.podCertificates,
    );

    // 2. Restart with everything up to date: a fresh process has written nothing once it went idle.
    log('cluster: restarting the operator');
    await op.stop();
    op = new OperatorProcess(cp.kubeconfigPath, OPERATOR_ARGS, OPERATOR_ENV, OPERATOR_LAUNCH);
    await op.start();
    const afterRestart = await waitIdle(op, 5000, 10 * 60_000);
    if (afterRestart.reconciles < sizes.wave) {
      throw new Error(
        `the restarted operator reconciled ${afterRestart.reconciles} of ${sizes.wave} identities`,
      );
    }
    result.writes.afterRestart = afterRestart.writes;
    result.writes.eventsAfterRestart = afterRestart.events;
    log(`cluster: after restart ${afterRestart.writes} writes, ${afterRestart.events} events`);

    // 3. Renewals: 30 s SVIDs renewed 20 s before expiry renew about every 10 s; count two rounds.
    log(`cluster: ${sizes.renewing} short-lived identities renewing twice`);
    const renewNames = names('r', sizes.renewing);
    const renewKeys = renewNames.map((n) => `renew/${n}`);
    const renewFirst = watch.when(renewKeys, isReady, 5 * 60_000);
    await createWave('renew', renewNames, { duration: '30s', renewBefore: '15s' });
    await renewFirst;
    await sleep(1000);
    const beforeRenewals = await counters(op);
    await watch.when(renewKeys, (w) => (w.status?.revision ?? 0) >= 3, 5 * 60_000);
    await sleep(1000);
    const afterRenewals = await counters(op);
    const renewals = afterRenewals.issued - beforeRenewals.issued;
    result.writes.perRenewal = perItem(afterRenewals.writes - beforeRenewals.writes, renewals);
    result.writes.eventsPerRenewal = perItem(afterRenewals.events - beforeRenewals.events, renewals);
    await kc.makeApiClient(k8s.CustomObjectsApi).deleteCollectionNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'renew',
      plural: PLURAL,
    });
    await waitIdle(op, 3000, 10 * 60_000);

    // 4. CA rotation: every wave identity re-issued from the new CA at the default issuance rate.
    log(`cluster: rotating the CA under ${sizes.wave} identities`);
    const oldSerials = new Map(waveKeys.map((k) => [k, watch.get(k)?.status?.serialNumber]));
    const rotated = watch.when(
      waveKeys,
      (w) => isReady(w) && w.status?.serialNumber !== oldSerials.get(keyOf(w)),
      60 * 60_000,
    );
    const rates: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      let prev = await counters(op);
      let prevAt = performance.now();
      while (sampling) {
        await sleep(1000);
        const now = await counters(op);
        const at = performance.now();
        rates.push((now.writes + now.events - prev.writes - prev.events) / ((at - prevAt) / 1000));
        prev = now;
        prevAt = at;
      }
    })();
    const newCa = await createSelfSignedCa({ trustDomain: TD, commonName: 'bench CA 2' });
    const rotationStart = performance.now();
    await putCaSecret(kc, SYSTEM_NS, 'ca', { 'tls.crt': newCa.certPem, 'tls.key': newCa.keyPem });
    const rotatedAt = await rotated;
    result.caRotation.seconds = (Math.max(...rotatedAt.values()) - rotationStart) / 1000;
    sampling = false;
    await sampler;
    result.caRotation.peakWritesPerSecond = rates.length > 0 ? Math.max(...rates) : null;
    log(`cluster: ${JSON.stringify({ writes: result.writes, caRotation: result.caRotation })}`);
    await waitIdle(op, 3000, 10 * 60_000);

    // 5. Memory with `scaleTo` identities Ready, then with unrelated Secrets beside them.
    const more = sizes.scaleTo - sizes.wave;
    log(`cluster: scaling to ${sizes.scaleTo} identities`);
    const scaleNames = names('s', more);
    const scaleReady = watch.when(
      scaleNames.map((n) => `scale/${n}`),
      isReady,
      60 * 60_000,
    );
    await createWave('scale', scaleNames);
    await scaleReady;
    await waitIdle(op, 5000, 30 * 60_000);
    result.memory.rssMb10k = await settledRssMb(op, 5);
    log(`cluster: RSS ${result.memory.rssMb10k.toFixed(1)} MB with ${sizes.scaleTo} identities`);
    log(`cluster: adding ${sizes.unrelatedSecrets} unrelated Secrets`);
    const filler = randomBytes(1536).toString('base64');
    await pool(names('u', sizes.unrelatedSecrets), 16, async (name) => {
      await core.createNamespacedSecret({
        namespace: 'unrelated',
        body: { metadata: { name }, type: 'Opaque', data: { config: filler } },
      });
    });
    await waitIdle(op, 5000, 10 * 60_000);
    result.memory.rssMb10kWithUnrelatedSecrets = await settledRssMb(op, 5);
  } finally {
    watch.stop();
    await op.stop();
    await cp.stop();
  }
}
