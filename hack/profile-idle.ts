// Where the idle operator's memory goes: starts the local control plane and the operator from this tree
// (source, or dist/ with --dist) as the bench does (the chart's ServiceAccount, the image's MALLOC_ARENA_MAX; the
// image's node flags unless --no-image-flags), waits until it is idle with no identities, then prints its
// resident memory by kind of mapping (/proc/PID/smaps: the node binary's code and data, the malloc heap,
// anonymous mappings, which hold V8's heap) and the V8 heap figures from its /metrics, and optionally
// writes a heap snapshot (--heap FILE.heapsnapshot). For the issue 17 memory work.
//   node hack/profile-idle.ts [--dist | --script FILE] [--no-image-flags] [--heap FILE] [--hold SECONDS]
//     [--node-arg=--flag ...] (MALLOC_ARENA_MAX and GLIBC_TUNABLES from the environment, else the image's:
//     bench/operator-env.ts)
import { readdir, readFile, rename } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ControlPlane } from './lib/control-plane.ts';
import { residentByMapping } from './lib/resident.ts';
import { installCrds } from './lib/crds.ts';
import { PooledKubeConfig } from '../src/kube/pooled-kubeconfig.ts';
import { createSelfSignedCa } from '../src/pki/index.ts';
import { createNamespace, putCaSecret } from '../test/harness/identities.ts';
import { OperatorProcess } from '../test/harness/operator-process.ts';
import { operatorKubeconfig, operatorKubeconfigPath } from '../bench/operator-account.ts';
import { imageMallocEnv } from '../bench/operator-env.ts';
import { settledRssMb, sleep, waitIdle } from '../bench/operator-metrics.ts';

const { values } = parseArgs({
  options: {
    dist: { type: 'boolean', default: false },
    'no-image-flags': { type: 'boolean', default: false },
    heap: { type: 'string' },
    hold: { type: 'string', default: '0' },
    script: { type: 'string' },
    'node-arg': { type: 'string', multiple: true, default: [] },
  },
});

const TD = 'profile.example.org';
const root = fileURLToPath(new URL('..', import.meta.url));
const heapDir = values.heap ? path.dirname(path.resolve(values.heap)) : os.tmpdir();
const nodeArgs = [
  ...(values['no-image-flags'] ? [] : ['--optimize-for-size', '--max-semi-space-size=2', '--liftoff-only']),
  '--heapsnapshot-signal=SIGUSR2',
  `--diagnostic-dir=${heapDir}`,
  ...(values['node-arg'] ?? []),
];
const script = values.script
  ? path.resolve(values.script)
  : values.dist
    ? path.join(root, 'dist/src/operator/main.js')
    : path.join(root, 'src/operator/main.ts');

const cp = await ControlPlane.start({});
const kc = new PooledKubeConfig();
kc.loadFromFile(cp.kubeconfigPath);
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
    {
      ...imageMallocEnv(),
      // dist/ as the image runs it: no NODE_OPTIONS (under npm it carries the source condition, see bench/cluster.ts).
      ...(values.dist && { NODE_OPTIONS: '' }),
    },
    { script, nodeArgs },
  );
  await op.start();
  await waitIdle(op, 3000, 5 * 60_000);
  const pid = op.pid ?? 0;
  const rssMb = await settledRssMb(op, 5);
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const byMapping = Object.entries(await residentByMapping(pid)).sort((a, b) => b[1] - a[1]);
  const metrics = await op.metrics([
    'nodejs_heap_size_total_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_external_memory_bytes',
    'nodejs_heap_space_size_used_bytes',
    'nodejs_heap_space_size_total_bytes',
  ]);
  console.log(
    `idle RSS (median of 5) ${rssMb.toFixed(1)} MB, pid ${pid}, ${script}, node ${nodeArgs.join(' ')}`,
  );
  console.log(rollup.trim());
  console.log('resident by mapping, kB:');
  for (const [k, v] of byMapping.slice(0, 12)) console.log(`  ${k.padEnd(34)} ${v}`);
  console.log(
    metrics
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .join('\n'),
  );
  if (values.heap) {
    const seen = new Set(await readdir(heapDir));
    process.kill(pid, 'SIGUSR2');
    let file: string | undefined;
    for (let i = 0; i < 600 && !file; i++) {
      await sleep(500);
      file = (await readdir(heapDir)).find((f) => f.endsWith('.heapsnapshot') && !seen.has(f));
    }
    if (!file) throw new Error('no heap snapshot written');
    await sleep(3000); // written synchronously; the name appears first
    await rename(path.join(heapDir, file), path.resolve(values.heap));
    console.log(`heap snapshot: ${values.heap}`);
  }
  const hold = Number(values.hold);
  if (hold > 0) {
    console.log(`holding for ${hold} s: KUBECONFIG=${operatorKubeconfigPath(cp)} operator pid ${pid}`);
    await sleep(hold * 1000);
  }
} finally {
  await op?.stop();
  await cp.stop();
}
