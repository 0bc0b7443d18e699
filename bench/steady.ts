// Steady state (--long): identities with short SVIDs renewing for a while, observed from outside: the
// operator's writes per second (its counters), its CPU (/proc, CPU-seconds per second = cores), its work
// queue's depth (its metric), and every renewal's lateness against src/renewal's rule, computed here from
// each identity's own status (renewal time = notAfter - renewBefore - jitter(uid)). A renewal counts as late
// when its new SVID shows up more than the jitter bound (min(renewBefore/10, 5 min)) after that time, and an
// identity still waiting at the end of the window counts too.
import {
  MAX_JITTER_SECONDS,
  renewalTime,
  resolveLifetime,
  type DurationBounds,
} from '../src/renewal/index.ts';
import { keyOf } from '../src/controller-runtime/informer.ts';
import type { WorkloadIdentity } from '../src/reconcilers/workload-identity/types.ts';
import { isReady } from '../test/harness/identities.ts';
import { createWave, names, type ClusterContext } from './cluster-context.ts';
import type { ClusterResult, ClusterSizes } from './cluster-result.ts';
import { counters, sleep, waitIdle } from './operator-metrics.ts';
import { cpuSeconds } from './proc.ts';

/** The operator's default --issuance-rate (src/operator/config.ts). */
const DEFAULT_ISSUANCE_RATE = 10;

interface Tracked {
  serial: string;
  renewAtMs: number;
  slackMs: number;
}

export async function measureSteady(
  ctx: ClusterContext,
  sizes: NonNullable<ClusterSizes['steady']>,
  bounds: DurationBounds,
  out: ClusterResult['steady'],
): Promise<void> {
  const lifetime = resolveLifetime({ duration: sizes.duration }, bounds);
  if (!lifetime.ok) throw new Error(`steady state: ${lifetime.message}`);
  const { durationSeconds, renewBeforeSeconds } = lifetime.lifetime;
  // Renewals are re-issuances of still-valid SVIDs, paced by --issuance-rate. N identities renewing every
  // (duration - renewBefore) need N / (duration - renewBefore) per second on average; the default (10/s)
  // sustains 6,000 10-minute SVIDs. The window runs with twice the average need, never below the default.
  const need = sizes.identities / (durationSeconds - renewBeforeSeconds);
  const rate = Math.max(DEFAULT_ISSUANCE_RATE, Math.ceil(2 * need));
  out.issuanceRate = rate;
  ctx.log(
    `cluster: steady state: restarting the operator with --issuance-rate=${rate} (need ${need.toFixed(1)}/s)`,
  );
  await ctx.restartOperator([`--issuance-rate=${rate}`]);
  await waitIdle(ctx.op, 5000, 30 * 60_000);

  const ns = 'steady';
  const tracked = new Map<string, Tracked>();
  let windowOpen = false;
  let renewals = 0;
  let late = 0;
  let maxLatenessMs = 0;
  let mismatches = 0;
  const lateness = (ms: number, slackMs: number) => {
    maxLatenessMs = Math.max(maxLatenessMs, ms);
    if (ms > slackMs) late++;
  };
  const stopListening = ctx.watch.onUpsert((w: WorkloadIdentity) => {
    if (w.metadata.namespace !== ns || !isReady(w) || !w.status?.notAfter || !w.status.serialNumber) return;
    const key = keyOf(w);
    const prev = tracked.get(key);
    if (prev?.serial === w.status.serialNumber) return;
    const now = Date.now();
    if (prev && windowOpen) {
      renewals++;
      lateness(now - prev.renewAtMs, prev.slackMs);
    }
    const renewAtMs = renewalTime(
      new Date(w.status.notAfter),
      renewBeforeSeconds,
      w.metadata.uid ?? '',
    ).getTime();
    if (w.status.renewalTime && Math.abs(Date.parse(w.status.renewalTime) - renewAtMs) > 1000) mismatches++;
    const slackMs = Math.min(renewBeforeSeconds / 10, MAX_JITTER_SECONDS) * 1000;
    tracked.set(key, { serial: w.status.serialNumber, renewAtMs, slackMs });
  });
  try {
    ctx.log(`cluster: steady state: creating ${sizes.identities} identities with ${sizes.duration} SVIDs`);
    const list = names('st', sizes.identities);
    const ready = ctx.watch.when(
      list.map((n) => `${ns}/${n}`),
      isReady,
      60 * 60_000,
    );
    await createWave(ctx.kc, ns, list, { duration: sizes.duration });
    await ready;
    ctx.log(`cluster: steady state: all Ready; observing for ${sizes.windowSeconds} s`);

    const pid = ctx.op.pid ?? 0;
    const writeRates: number[] = [];
    const cores: number[] = [];
    const depths: number[] = [];
    let prev = await counters(ctx.op);
    let prevCpu = await cpuSeconds(pid);
    const start = performance.now();
    let prevAt = start;
    windowOpen = true;
    const first = { writes: prev.writes, events: prev.events, cpu: prevCpu };
    for (let i = 1; i <= sizes.windowSeconds; i++) {
      await sleep(Math.max(0, start + i * 1000 - performance.now()));
      const now = await counters(ctx.op);
      const cpu = await cpuSeconds(pid);
      const at = performance.now();
      const s = (at - prevAt) / 1000;
      writeRates.push((now.writes - prev.writes) / s);
      cores.push((cpu - prevCpu) / s);
      depths.push(now.depth);
      prev = now;
      prevCpu = cpu;
      prevAt = at;
    }
    windowOpen = false;
    const end = Date.now();
    // Identities whose renewal time (plus the jitter bound) passed without a new SVID are late too.
    for (const t of tracked.values())
      if (end > t.renewAtMs + t.slackMs) lateness(end - t.renewAtMs, t.slackMs);
    const elapsed = (prevAt - start) / 1000;
    const tenSecondCores = cores
      .map((_, i) => cores.slice(Math.max(0, i - 9), i + 1))
      .filter((w) => w.length === 10);
    out.writesPerSecondMean = (prev.writes - first.writes) / elapsed;
    out.writesPerSecondPeak = Math.max(...writeRates);
    out.eventsPerSecondMean = (prev.events - first.events) / elapsed;
    out.operatorCoresMean = (prevCpu - first.cpu) / elapsed;
    out.operatorCoresPeak =
      tenSecondCores.length > 0
        ? Math.max(...tenSecondCores.map((w) => w.reduce((a, b) => a + b, 0) / 10))
        : null;
    out.queueDepthMax = Math.max(...depths);
    out.queueDepthMean = depths.reduce((a, b) => a + b, 0) / depths.length;
    out.renewals = renewals;
    out.lateRenewals = late;
    out.maxLatenessSeconds = maxLatenessMs / 1000;
    out.renewalTimeMismatches = mismatches;
  } finally {
    stopListening();
  }
}
