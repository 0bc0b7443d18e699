// The operator against a real local control plane (etcd, kube-apiserver and kube-controller-manager from
// hack/lib, all sharing this machine with the operator and this script), the operator as a child process
// running as the chart's ServiceAccount with the chart's RBAC and its default rate limits. In one run, in
// this order (each phase its own function, so a new one is one more call):
//  1. the idle operator's memory with no identities (the baseline);
//  2. the first scale point: a wave of identities created 16 at a time (time to Ready, CPU, writes, memory);
//  3. a restart with everything up to date and the writes it made; while the operator is down, the API
//     server's own pace for the same writes from a plain client (bench/api-limit.ts);
//  4. the writes per renewal, from short-lived identities renewing twice;
//  5. a CA change: time until every identity holds an SVID from the new CA, and the peak write rate;
//  6. the second scale point: a wave up to the full number of identities, measured like the first;
//  7. memory with as many unrelated Secrets added;
//  8. memory after a restart at that size, as the image launches the operator and without its settings;
//  9. with --long, the steady state (bench/steady.ts); `--long --only steady` runs it alone.
// The operator counts its own writes (svid_operator_api_writes_total); "writes" are Secret and status
// writes, the Events it records are reported beside them.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { ControlPlane } from '../hack/lib/control-plane.ts';
import { installCrds } from '../hack/lib/crds.ts';
import { keyOf } from '../src/controller-runtime/informer.ts';
import { GROUP, PLURAL, VERSION } from '../src/reconcilers/workload-identity/types.ts';
import { PooledKubeConfig } from '../src/kube/pooled-kubeconfig.ts';
import { createSelfSignedCa } from '../src/pki/index.ts';
import { createNamespace, isReady, putCaSecret } from '../test/harness/identities.ts';
import { OperatorProcess } from '../test/harness/operator-process.ts';
import { measureApiLimit } from './api-limit.ts';
import { apfLevels } from './apf.ts';
import {
  CREATE_CONCURRENCY,
  createWave,
  names,
  type ClusterContext,
  type OperatorLaunchVariant,
} from './cluster-context.ts';
import type { ClusterResult, ClusterSizes, ScalePoint } from './cluster-result.ts';
import { IdentityWatch, pool } from './identity-watch.ts';
import { operatorKubeconfig, operatorKubeconfigPath } from './operator-account.ts';
import { imageMallocEnv } from './operator-env.ts';
import { counters, perItem, sampleWriteRates, settledRssMb, sleep, waitIdle } from './operator-metrics.ts';
import { measureSteady } from './steady.ts';
import { benchPodCertificates } from './pod-certificates.ts';
import { measureWave } from './wave.ts';

export { emptyClusterResult, type ClusterResult, type ClusterSizes } from './cluster-result.ts';

const TD = 'bench.example.org';
const SYSTEM_NS = 'svid-system';
const CA_SECRET = 'ca';
// Default rate limits and concurrency; only the shortest lifetime (and renewBefore) is lowered, for the
// renewal phase, and the CA rotation's propagation delay (a fixed wait before re-issuing, 2m by default,
// added to the rotation time whatever the operator does) to 10 s.
export const OPERATOR_ARGS = [
  `--trust-domain=${TD}`,
  `--ca-secret=${SYSTEM_NS}/${CA_SECRET}`,
  '--min-duration=10s',
  '--min-renew-before=5s',
  '--ca-propagation-delay=10s',
];
const BOUNDS = { minSeconds: 10, maxSeconds: 24 * 3600, minRenewBeforeSeconds: 5 };
// The operator as the image runs it (Dockerfile ENV and ENTRYPOINT): compiled JavaScript, the same node
// flags and malloc setting.
const OPERATOR_LAUNCH = {
  script: fileURLToPath(new URL('../dist/src/operator/main.js', import.meta.url)),
  nodeArgs: ['--optimize-for-size', '--max-semi-space-size=2', '--liftoff-only'],
};
// NODE_OPTIONS emptied: under `npm run bench` it carries .npmrc's `--conditions=svid-operator-source`, which
// makes the compiled operator load the mTLS library from its TypeScript source through Node's type stripper
// (~13 MB more resident: 92.7 against 78-79 MB idle, hack/profile-wave.ts --dist with and without it). The
// image sets no NODE_OPTIONS.
const OPERATOR_ENV = { ...imageMallocEnv(), NODE_OPTIONS: '' };

/** Compiles dist/ first, so the operator measured is the code in this tree. */
async function build(): Promise<void> {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const project = fileURLToPath(new URL('../tsconfig.build.json', import.meta.url));
  // The operator imports the mTLS library package, whose dist/ the image ships too (npm run build order).
  const library = fileURLToPath(new URL('../packages/mtls/tsconfig.json', import.meta.url));
  await promisify(execFile)(process.execPath, [tsc, '-p', library]);
  await promisify(execFile)(process.execPath, [tsc, '-p', project]);
}

const publicPoint = ({ issued: _issued, ...point }: ScalePoint & { issued: number }): ScalePoint => point;

/** 1. The idle operator with no identities, once its start settled. */
async function phaseBaseline(ctx: ClusterContext, result: ClusterResult): Promise<void> {
  await waitIdle(ctx.op, 3000, 5 * 60_000);
  result.memory.baselineMb = await settledRssMb(ctx.op, 5);
  ctx.log(`cluster: baseline RSS ${result.memory.baselineMb.toFixed(1)} MB`);
}

/** 2. The first scale point; its figures are also the time-to-Ready and first-issuance figures. */
async function phaseFirstWave(
  ctx: ClusterContext,
  sizes: ClusterSizes,
  result: ClusterResult,
): Promise<string[]> {
  ctx.log(`cluster: creating ${sizes.wave} identities`);
  const waveNames = names('w', sizes.wave);
  const point = await measureWave(ctx, 'wave', waveNames, 0);
  result.scale.points.push(publicPoint(point));
  result.ttr.p50Ms = point.p50Ms;
  result.ttr.p99Ms = point.p99Ms;
  result.ttr.allReadySeconds = point.allReadySeconds;
  result.ttr.allReadyFromFirstCreateSeconds = point.allReadyFromFirstCreateSeconds;
  result.ttr.cpuSeconds = point.cpuSeconds;
  result.cpu.msPerIssue = point.issued > 0 ? ((point.cpuSeconds.operator ?? 0) * 1000) / point.issued : null;
  result.writes.perIssue = point.writesPerIdentity;
  result.writes.eventsPerIssue = point.eventsPerIdentity;
  result.apf.levels = await apfLevels(ctx.cp);
  ctx.log(`cluster: ${JSON.stringify({ point: publicPoint(point), apf: result.apf.levels })}`);
  return waveNames.map((n) => `wave/${n}`);
}

/** 3. Restart with everything up to date; while the operator is down, the API server's own pace. */
async function phaseRestartAndApiLimit(
  ctx: ClusterContext,
  sizes: ClusterSizes,
  result: ClusterResult,
  waveKeys: string[],
): Promise<void> {
  ctx.log('cluster: stopping the operator; the same writes from a plain client');
  await ctx.op.stop();
  const [ns, name] = (waveKeys[0] ?? '').split('/') as [string, string];
  const wi = ctx.watch.get(`${ns}/${name}`);
  const secret = await ctx.kc
    .makeApiClient(k8s.CoreV1Api)
    .readNamespacedSecret({ namespace: ns, name: wi?.spec.secretName ?? '' });
  const limit = await measureApiLimit(ctx.kc, 'ref', sizes.wave, { secret, status: wi?.status });
  result.apiLimit.seconds = limit.seconds;
  result.apiLimit.writesPerSecond = limit.writesPerSecond;
  if (result.ttr.allReadySeconds !== null)
    result.ttr.ratioToApiLimit = result.ttr.allReadySeconds / limit.seconds;
  if (result.ttr.allReadyFromFirstCreateSeconds !== null)
    result.ttr.ratioFromFirstCreate = result.ttr.allReadyFromFirstCreateSeconds / limit.seconds;
  ctx.log(
    `cluster: ${JSON.stringify({ apiLimit: result.apiLimit, ratio: result.ttr.ratioToApiLimit, fromFirstCreate: result.ttr.ratioFromFirstCreate })}`,
  );

  ctx.log('cluster: restarting the operator');
  await ctx.restartOperator();
  const afterRestart = await waitIdle(ctx.op, 5000, 10 * 60_000);
  if (afterRestart.reconciles < sizes.wave) {
    throw new Error(
      `the restarted operator reconciled ${afterRestart.reconciles} of ${sizes.wave} identities`,
    );
  }
  result.writes.afterRestart = afterRestart.writes;
  result.writes.eventsAfterRestart = afterRestart.events;
  ctx.log(`cluster: after restart ${afterRestart.writes} writes, ${afterRestart.events} events`);
}

/** 4. Renewals: 30 s SVIDs renewed 15 s before expiry renew about every 15 s; count two rounds. */
async function phaseRenewals(ctx: ClusterContext, sizes: ClusterSizes, result: ClusterResult): Promise<void> {
  ctx.log(`cluster: ${sizes.renewing} short-lived identities renewing twice`);
  const renewNames = names('r', sizes.renewing);
  const renewKeys = renewNames.map((n) => `renew/${n}`);
  const renewFirst = ctx.watch.when(renewKeys, isReady, 5 * 60_000);
  await createWave(ctx.kc, 'renew', renewNames, { duration: '30s', renewBefore: '15s' });
  await renewFirst;
  await sleep(1000);
  const before = await counters(ctx.op);
  await ctx.watch.when(renewKeys, (w) => (w.status?.revision ?? 0) >= 3, 5 * 60_000);
  await sleep(1000);
  const after = await counters(ctx.op);
  const renewals = after.issued - before.issued;
  result.writes.perRenewal = perItem(after.writes - before.writes, renewals);
  result.writes.eventsPerRenewal = perItem(after.events - before.events, renewals);
  await ctx.kc.makeApiClient(k8s.CustomObjectsApi).deleteCollectionNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: 'renew',
    plural: PLURAL,
  });
  await waitIdle(ctx.op, 3000, 10 * 60_000);
}

/** 5. CA rotation: every wave identity re-issued from the new CA at the default issuance rate. */
async function phaseCaRotation(
  ctx: ClusterContext,
  result: ClusterResult,
  waveKeys: string[],
): Promise<void> {
  ctx.log(`cluster: rotating the CA under ${waveKeys.length} identities`);
  const oldSerials = new Map(waveKeys.map((k) => [k, ctx.watch.get(k)?.status?.serialNumber]));
  const rotated = ctx.watch.when(
    waveKeys,
    (w) => isReady(w) && w.status?.serialNumber !== oldSerials.get(keyOf(w)),
    60 * 60_000,
  );
  const sampler = sampleWriteRates(ctx.op);
  try {
    const newCa = await createSelfSignedCa({ trustDomain: TD, commonName: 'bench CA 2' });
    const rotationStart = performance.now();
    await putCaSecret(ctx.kc, SYSTEM_NS, CA_SECRET, { 'tls.crt': newCa.certPem, 'tls.key': newCa.keyPem });
    const rotatedAt = await rotated;
    result.caRotation.seconds = (Math.max(...rotatedAt.values()) - rotationStart) / 1000;
  } catch (err) {
    await sampler.stop();
    throw err;
  }
  const rates = await sampler.stop();
  result.caRotation.peakWritesPerSecond = rates.length > 0 ? Math.max(...rates) : null;
  ctx.log(`cluster: ${JSON.stringify({ writes: result.writes, caRotation: result.caRotation })}`);
  await waitIdle(ctx.op, 3000, 10 * 60_000);
}

/** 6. The second scale point: a wave up to `scaleTo` identities into the operator holding the first wave. */
async function phaseSecondWave(
  ctx: ClusterContext,
  sizes: ClusterSizes,
  result: ClusterResult,
): Promise<void> {
  const more = sizes.scaleTo - sizes.wave;
  ctx.log(`cluster: scaling to ${sizes.scaleTo} identities (${more} more)`);
  const point = publicPoint(await measureWave(ctx, 'scale', names('s', more), sizes.wave));
  result.scale.points.push(point);
  const first = result.scale.points[0];
  if (first) {
    const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
    result.scale.growth = {
      secondsPerIdentityRatio:
        point.allReadyFromFirstCreateSeconds /
        point.wave /
        (first.allReadyFromFirstCreateSeconds / first.wave),
      cpuMsPerIdentityRatio: point.cpuMsPerIdentity / first.cpuMsPerIdentity,
      apiServerCpuMsPerIdentityRatio: point.apiServerCpuMsPerIdentity / first.apiServerCpuMsPerIdentity,
      writesPerIdentityRatio: ratio(point.writesPerIdentity, first.writesPerIdentity),
      rssMbRatio: point.rssMb / first.rssMb,
    };
  }
  result.memory.rssMb10k = point.rssMb;
  if (result.memory.baselineMb !== null) {
    result.memory.kbPerIdentity = ((point.rssMb - result.memory.baselineMb) * 1024) / point.identities;
  }
  ctx.log(`cluster: ${JSON.stringify({ point, growth: result.scale.growth })}`);
  await sleep(sizes.idleSeconds * 1000);
  result.memory.rssMb10kIdle = await settledRssMb(ctx.op, 5);
  ctx.log(`cluster: RSS ${result.memory.rssMb10kIdle.toFixed(1)} MB after ${sizes.idleSeconds} s more idle`);
}

/** 7. Memory with as many unrelated Secrets beside the identities: they must never enter it. */
async function phaseUnrelatedSecrets(
  ctx: ClusterContext,
  sizes: ClusterSizes,
  result: ClusterResult,
): Promise<void> {
  ctx.log(`cluster: adding ${sizes.unrelatedSecrets} unrelated Secrets`);
  const core = ctx.kc.makeApiClient(k8s.CoreV1Api);
  const filler = randomBytes(1536).toString('base64');
  await pool(names('u', sizes.unrelatedSecrets), CREATE_CONCURRENCY, async (name) => {
    await core.createNamespacedSecret({
      namespace: 'unrelated',
      body: { metadata: { name }, type: 'Opaque', data: { config: filler } },
    });
  });
  await waitIdle(ctx.op, 5000, 10 * 60_000);
  result.memory.rssMb10kWithUnrelatedSecrets = await settledRssMb(ctx.op, 5);
}

/**
 * 8. Memory after a restart holding every identity (0 writes, each Secret verified once), launched three
 * ways, the image's way last so a steady state after it runs as the image does. Empty values turn the
 * malloc settings off (glibc ignores an empty GLIBC_TUNABLES, and MALLOC_ARENA_MAX= leaves its default).
 */
async function phaseMemoryWithoutSettings(
  ctx: ClusterContext,
  sizes: ClusterSizes,
  result: ClusterResult,
): Promise<void> {
  const variants: [keyof ClusterResult['memory']['afterRestart'], string, OperatorLaunchVariant][] = [
    ['plainNodeMb', 'plain node', { env: { MALLOC_ARENA_MAX: '', GLIBC_TUNABLES: '' }, nodeArgs: [] }],
    [
      'noMallocSettingsMb',
      'without the malloc settings',
      { env: { MALLOC_ARENA_MAX: '', GLIBC_TUNABLES: '' } },
    ],
    ['imageMb', 'as the image', {}],
  ];
  for (const [field, what, variant] of variants) {
    ctx.log(`cluster: restarting the operator ${what} (${sizes.scaleTo} identities)`);
    await ctx.restartOperator([], variant);
    const idle = await waitIdle(ctx.op, 5000, 10 * 60_000);
    if (idle.reconciles < sizes.scaleTo)
      throw new Error(`the operator restarted ${what} reconciled ${idle.reconciles} of ${sizes.scaleTo}`);
    result.memory.afterRestart[field] = await settledRssMb(ctx.op, 5);
    ctx.log(`cluster: RSS ${result.memory.afterRestart[field]?.toFixed(1)} MB after a restart ${what}`);
  }
}

/** Fills `result` phase by phase, so the figures measured before a failure survive it. */
export async function benchCluster(
  sizes: ClusterSizes,
  result: ClusterResult,
  log: (line: string) => void,
  opts: { clusterPhases: boolean } = { clusterPhases: true },
): Promise<void> {
  await build();
  const cp = await ControlPlane.start({ podCertificates: true });
  const kc = new PooledKubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const watch = new IdentityWatch(kc);
  const operatorConfig = operatorKubeconfigPath(cp);
  const ctx: ClusterContext = {
    cp,
    kc,
    watch,
    op: new OperatorProcess(operatorConfig, OPERATOR_ARGS, OPERATOR_ENV, OPERATOR_LAUNCH),
    async restartOperator(extraArgs: string[] = [], launch: OperatorLaunchVariant = {}) {
      await this.op.stop();
      this.op = new OperatorProcess(
        operatorConfig,
        [...OPERATOR_ARGS, ...extraArgs],
        { ...OPERATOR_ENV, ...launch.env },
        { ...OPERATOR_LAUNCH, ...(launch.nodeArgs && { nodeArgs: launch.nodeArgs }) },
      );
      await this.op.start();
    },
    log,
  };
  try {
    await installCrds(kc);
    const namespaces = [SYSTEM_NS, 'wave', 'ref', 'renew', 'scale', 'unrelated', 'steady'];
    for (const ns of namespaces) await createNamespace(kc, ns);
    result.apf.user = await operatorKubeconfig(cp, kc, SYSTEM_NS, CA_SECRET, operatorConfig);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, SYSTEM_NS, CA_SECRET, { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    await ctx.op.start();
    await watch.start();

    if (opts.clusterPhases) {
      await phaseBaseline(ctx, result);
      const waveKeys = await phaseFirstWave(ctx, sizes, result);
      // As many PodCertificateRequests, answered by a second operator process with the signer.
      await benchPodCertificates(
        {
          cp,
          kc,
          requests: sizes.wave,
          operatorArgs: OPERATOR_ARGS,
          operatorEnv: OPERATOR_ENV,
          operatorLaunch: OPERATOR_LAUNCH,
          log,
        },
        result.podCertificates,
      );
      await phaseRestartAndApiLimit(ctx, sizes, result, waveKeys);
      await phaseRenewals(ctx, sizes, result);
      await phaseCaRotation(ctx, result, waveKeys);
      await phaseSecondWave(ctx, sizes, result);
      await phaseUnrelatedSecrets(ctx, sizes, result);
      await phaseMemoryWithoutSettings(ctx, sizes, result);
    }
    if (sizes.steady) await measureSteady(ctx, sizes.steady, BOUNDS, result.steady);
  } finally {
    watch.stop();
    await ctx.op.stop();
    await cp.stop();
  }
}
