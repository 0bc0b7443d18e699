// One point of the scale curve: a wave of identities created 16 at a time into the running operator, timed
// from the first create until all are Ready, with the CPU every process used meanwhile (/proc), the
// operator's writes per identity once it went idle, and its resident memory then.
import { isReady } from '../test/harness/identities.ts';
import { createWave, processPids, type ClusterContext } from './cluster-context.ts';
import { counters, perItem, sampleWriteRates, settledRssMb, waitIdle } from './operator-metrics.ts';
import { cpuDelta, cpuSnapshot } from './proc.ts';
import type { ScalePoint } from './cluster-result.ts';
import { percentile } from './stats.ts';

export async function measureWave(
  ctx: ClusterContext,
  ns: string,
  waveNames: string[],
  heldBefore: number,
): Promise<ScalePoint & { issued: number }> {
  const keys = waveNames.map((n) => `${ns}/${n}`);
  const before = await counters(ctx.op);
  const ready = ctx.watch.when(keys, isReady, 60 * 60_000);
  const pids = processPids(ctx);
  const cpuBefore = await cpuSnapshot(pids);
  const rates = sampleWriteRates(ctx.op);
  const t0 = performance.now();
  const { started, lastCreated } = await createWave(ctx.kc, ns, waveNames);
  ctx.log(
    `cluster: created ${waveNames.length} in ${((lastCreated - t0) / 1000).toFixed(1)} s; waiting for Ready`,
  );
  const readyAt = await ready;
  const cpu = cpuDelta(cpuBefore, await cpuSnapshot(pids));
  const writeRates = await rates.stop();
  const lastReady = Math.max(...readyAt.values());
  const ttrs = keys.map((k) => (readyAt.get(k) ?? 0) - (started.get(k) ?? 0));
  const after = await waitIdle(ctx.op, 3000, 30 * 60_000);
  const issued = after.issued - before.issued;
  const n = waveNames.length;
  return {
    identities: heldBefore + n,
    wave: n,
    createSeconds: (lastCreated - t0) / 1000,
    allReadySeconds: (lastReady - lastCreated) / 1000,
    allReadyFromFirstCreateSeconds: (lastReady - t0) / 1000,
    p50Ms: percentile(ttrs, 50),
    p99Ms: percentile(ttrs, 99),
    cpuMsPerIdentity: ((cpu.operator ?? 0) * 1000) / n,
    apiServerCpuMsPerIdentity: ((cpu['kube-apiserver'] ?? 0) * 1000) / n,
    etcdCpuMsPerIdentity: ((cpu.etcd ?? 0) * 1000) / n,
    writesPerIdentity: perItem(after.writes - before.writes, issued),
    eventsPerIdentity: perItem(after.events - before.events, issued),
    peakWritesPerSecond: writeRates.length > 0 ? Math.max(...writeRates) : null,
    rssMb: await settledRssMb(ctx.op, 5),
    cpuSeconds: cpu,
    issued,
  };
}
