// Profiles one wave of first issuances against the local control plane: the operator from this tree (the
// TypeScript source, or dist/ with --dist) with the image's node flags, N identities created 16 at a time,
// then its CPU seconds, reconciles, writes and Events per identity, resident memory once idle, and
// optionally a V8 CPU profile (--cpu-prof DIR; summarise with hack/cpuprofile-summary.ts) and a heap
// snapshot once all are Ready (--heap FILE.heapsnapshot). For the issue 17 work; the bench
// (npm run bench) reports the figures that count.
//   node hack/profile-wave.ts [--identities 1000] [--cpu-prof DIR] [--heap FILE] [--dist]
//     [--drop-flag=--liftoff-only ...] (leaves one of the image's node flags out, to measure what it costs)
//     [--hold SECONDS] (keeps the operator running after the report, e.g. to attach gdb and call malloc_trim)
//   The image's malloc settings (bench/operator-env.ts) unless the environment sets them: GLIBC_TUNABLES= (empty)
//   measures without the mmap threshold.
import { readdir, readFile, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ControlPlane } from './lib/control-plane.ts';
import { installCrds } from './lib/crds.ts';
import { residentByMapping } from './lib/resident.ts';
import { PooledKubeConfig } from '../src/kube/pooled-kubeconfig.ts';
import { createSelfSignedCa } from '../src/pki/index.ts';
import { createNamespace, isReady, putCaSecret } from '../test/harness/identities.ts';
import { OperatorProcess } from '../test/harness/operator-process.ts';
import { createWave, names } from '../bench/cluster-context.ts';
import { IdentityWatch } from '../bench/identity-watch.ts';
import { operatorKubeconfig, operatorKubeconfigPath } from '../bench/operator-account.ts';
import { counters, settledRssMb, sleep, waitIdle } from '../bench/operator-metrics.ts';
import { imageMallocEnv } from '../bench/operator-env.ts';
import { cpuSeconds } from '../bench/proc.ts';

const { values } = parseArgs({
  options: {
    identities: { type: 'string', default: '1000' },
    'cpu-prof': { type: 'string' },
    heap: { type: 'string' },
    dist: { type: 'boolean', default: false },
    'drop-flag': { type: 'string', multiple: true, default: [] },
    hold: { type: 'string', default: '0' },
  },
});
const n = Number(values.identities);
if (!Number.isInteger(n) || n < 1 || n > 20_000) throw new Error('--identities must be 1..20000');

const TD = 'profile.example.org';
const root = fileURLToPath(new URL('..', import.meta.url));
const heapDir = values.heap ? path.dirname(path.resolve(values.heap)) : os.tmpdir();
const dropped = values['drop-flag'] ?? [];
const nodeArgs = [
  '--optimize-for-size',
  '--max-semi-space-size=2',
  '--liftoff-only',
  '--heapsnapshot-signal=SIGUSR2',
  `--diagnostic-dir=${heapDir}`,
].filter((flag) => !dropped.includes(flag));
const cpuDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
if (cpuDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${cpuDir}`);
const script = values.dist
  ? path.join(root, 'dist/src/operator/main.js')
  : path.join(root, 'src/operator/main.ts');

const cp = await ControlPlane.start({});
const kc = new PooledKubeConfig();
kc.loadFromFile(cp.kubeconfigPath);
const watch = new IdentityWatch(kc);
let op: OperatorProcess | undefined;
try {
  await installCrds(kc);
  for (const ns of ['svid-system', 'wave']) await createNamespace(kc, ns);
  await operatorKubeconfig(cp, kc, 'svid-system', 'ca', operatorKubeconfigPath(cp));
  const ca = await createSelfSignedCa({ trustDomain: TD });
  await putCaSecret(kc, 'svid-system', 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
  op = new OperatorProcess(
    operatorKubeconfigPath(cp),
    [`--trust-domain=${TD}`, '--ca-secret=svid-system/ca'],
    // dist/ as the image runs it: no NODE_OPTIONS (under npm it carries the source condition, see bench/cluster.ts).
    { ...imageMallocEnv(), ...(values.dist && { NODE_OPTIONS: '' }) },
    { script, nodeArgs },
  );
  await op.start();
  await watch.start();
  await waitIdle(op, 3000, 5 * 60_000);
  const baselineMb = await settledRssMb(op, 3);
  const keys = names('w', n).map((k) => `wave/${k}`);
  const ready = watch.when(keys, isReady, 60 * 60_000);
  const before = await counters(op);
  const cpu0 = await cpuSeconds(op.pid ?? 0);
  const t0 = performance.now();
  await createWave(kc, 'wave', names('w', n));
  await ready;
  const readySeconds = (performance.now() - t0) / 1000;
  const cpu1 = await cpuSeconds(op.pid ?? 0);
  const after = await waitIdle(op, 3000, 30 * 60_000);
  const rss = await settledRssMb(op, 3);
  // Where the resident memory is: V8's heap (used and committed) and memory outside it held by JS objects.
  const heapMb: Record<string, number> = {};
  for (const line of (
    await op.metrics([
      'nodejs_heap_size_used_bytes',
      'nodejs_heap_size_total_bytes',
      'nodejs_external_memory_bytes',
      'nodejs_heap_space_size_used_bytes',
      'nodejs_heap_space_size_total_bytes',
    ])
  ).split('\n')) {
    const m = /^nodejs_(\w+)_bytes(?:\{space="(\w+)"\})?\s+([\d.e+]+)/.exec(line);
    if (m?.[1] && m[3]) heapMb[m[2] ? `${m[1]}.${m[2]}` : m[1]] = Number((Number(m[3]) / 2 ** 20).toFixed(1));
  }
  // Resident kB by kind of mapping (anonymous data holds V8's heap; [heap] is malloc's) and the rollup's totals.
  const residentKb = await residentByMapping(op.pid ?? 0);
  const rollupKb: Record<string, number> = {};
  for (const m of (await readFile(`/proc/${op.pid ?? 0}/smaps_rollup`, 'utf8')).matchAll(
    /^(Rss|Pss_Anon|Pss_File|Anonymous|Private_Dirty):\s+(\d+) kB/gm,
  ))
    if (m[1] && m[2]) rollupKb[m[1]] = Number(m[2]);
  if (values.heap) {
    const seen = new Set(await readdir(heapDir));
    process.kill(op.pid ?? 0, 'SIGUSR2');
    let file: string | undefined;
    for (let i = 0; i < 600 && !file; i++) {
      await sleep(500);
      file = (await readdir(heapDir)).find((f) => f.endsWith('.heapsnapshot') && !seen.has(f));
    }
    if (!file) throw new Error('no heap snapshot written');
    await sleep(5000); // written synchronously; the name appears first
    await rename(path.join(heapDir, file), path.resolve(values.heap));
  }
  const per = (x: number) => Number((x / n).toFixed(3));
  console.log(
    JSON.stringify({
      identities: n,
      readySeconds: Number(readySeconds.toFixed(1)),
      cpuMsPerIssue: Number((((cpu1 - cpu0) * 1000) / n).toFixed(2)),
      reconcilesPerIdentity: per(after.reconciles - before.reconciles),
      writesPerIdentity: per(after.writes - before.writes),
      eventsPerIdentity: per(after.events - before.events),
      issued: after.issued - before.issued,
      baselineMb: Number(baselineMb.toFixed(1)),
      rssMb: Number(rss.toFixed(1)),
      kbPerIdentity: Number((((rss - baselineMb) * 1024) / n).toFixed(2)),
      heapMb,
      residentKb,
      rollupKb,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      nodeArgs: nodeArgs.filter((flag) => !flag.startsWith('--diagnostic-dir')),
    }),
  );
  const hold = Number(values.hold);
  if (hold > 0) {
    console.log(`holding for ${hold} s: operator pid ${op.pid ?? 0}`);
    await sleep(hold * 1000);
  }
} finally {
  watch.stop();
  await op?.stop();
  await cp.stop();
}
