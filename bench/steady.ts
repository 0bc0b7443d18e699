// Steady state (--long): identities with short SVIDs renewing for a while, observed from outside: the
// operator's writes per second (its counters), its CPU (/proc, CPU-seconds per second = cores), its work
// queue's depth (its metric), and every renewal's lateness against src/renewal's rule, computed here from
// each identity's own status (renewal time = notAfter - renewBefore - jitter(uid)). A renewal counts as late
// when its new SVID shows up more than the jitter bound (min(renewBefore/10, 5 min)) after that time, and an
// identity still waiting at the end of the window counts too.
import { writeFile } from 'node:fs/promises';
import { resolveLifetime, type DurationBounds } from '../src/renewal/index.ts';
import { keyOf } from '../src/controller-runtime/informer.ts';
import type { WorkloadIdentity } from '../src/reconcilers/workload-identity/types.ts';
import { isReady } from '../test/harness/identities.ts';
import { sumMetric } from '../test/harness/operator-process.ts';
import { createWave, names, type ClusterContext } from './cluster-context.ts';
import type { ClusterResult, ClusterSizes } from './cluster-result.ts';
import { countBetween, histogramBuckets, quantileBetween } from './histogram.ts';
import { counters, sleep, waitIdle } from './operator-metrics.ts';
import { RenewalLateness } from './renewal-lateness.ts';
import { cpuSeconds } from './proc.ts';

/** The operator's default --issuance-rate (src/operator/config.ts). */
const DEFAULT_ISSUANCE_RATE = 10;

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
  const lateness = new RenewalLateness(renewBeforeSeconds);
  const stopListening = ctx.watch.onUpsert((w: WorkloadIdentity) => {
    if (w.metadata.namespace !== ns || !isReady(w) || !w.status?.notAfter || !w.status.serialNumber) return;
    lateness.seen(
      {
        key: keyOf(w),
        uid: w.metadata.uid ?? '',
        serial: w.status.serialNumber,
        notAfter: new Date(w.status.notAfter),
        renewalTime: w.status.renewalTime ? new Date(w.status.renewalTime) : undefined,
      },
      Date.now(),
    );
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
    const backlogs: number[] = [];
    const aheads: number[] = [];
    const actives: number[] = [];
    const writing: number[] = [];
    const firstText = await ctx.op.metrics();
    let prev = await counters(ctx.op);
    let prevCpu = await cpuSeconds(pid);
    const start = performance.now();
    let prevAt = start;
    lateness.openWindow();
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
      backlogs.push(now.pacerBacklog);
      aheads.push(now.pacerAhead);
      actives.push(now.active);
      writing.push(now.writing);
      prev = now;
      prevCpu = cpu;
      prevAt = at;
    }
    const summary = lateness.close(Date.now());
    const lastText = await ctx.op.metrics();
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
    out.renewals = summary.renewals;
    out.lateRenewals = summary.lateRenewals;
    out.overdueAtEnd = summary.overdueAtEnd;
    out.maxLatenessSeconds = summary.maxLatenessSeconds;
    out.renewalTimeMismatches = summary.renewalTimeMismatches;
    out.pacerBacklogMax = Math.max(...backlogs);
    out.pacerAheadMax = Math.max(...aheads);
    out.earlyRenewals = summary.earlyRenewals;
    out.maxEarlinessSeconds = summary.maxEarlinessSeconds;
    out.activeReconcilesMean = actives.reduce((a, b) => a + b, 0) / actives.length;
    out.activeReconcilesMax = Math.max(...actives);
    out.writingMean = writing.reduce((a, b) => a + b, 0) / writing.length;
    out.writingMax = Math.max(...writing);
    // Where a reconcile's time goes (the operator's histograms, over the window; bucket upper bounds).
    const q = (name: string, labels: Record<string, string>, quantile: number) =>
      quantileBetween(
        histogramBuckets(firstText, name, labels),
        histogramBuckets(lastText, name, labels),
        quantile,
      );
    const ms = (v: number | null) => (v === null ? null : v * 1000);
    out.reconciles = countBetween(
      histogramBuckets(firstText, 'svid_operator_reconcile_duration_seconds'),
      histogramBuckets(lastText, 'svid_operator_reconcile_duration_seconds'),
    );
    out.reconcileErrors =
      sumMetric(lastText, 'svid_operator_reconcile_errors_total') -
      sumMetric(firstText, 'svid_operator_reconcile_errors_total');
    out.reconcileP50Ms = ms(q('svid_operator_reconcile_duration_seconds', {}, 0.5));
    out.reconcileP99Ms = ms(q('svid_operator_reconcile_duration_seconds', {}, 0.99));
    out.apiRequestP50Ms = ms(q('svid_operator_api_request_duration_seconds', {}, 0.5));
    out.apiRequestP99Ms = ms(q('svid_operator_api_request_duration_seconds', {}, 0.99));
    out.queueWaitP50Ms = ms(q('svid_operator_workqueue_latency_seconds', {}, 0.5));
    out.queueWaitP99Ms = ms(q('svid_operator_workqueue_latency_seconds', {}, 0.99));
    ctx.log(`cluster: steady state: ${JSON.stringify(out)}`);
    // For diagnosis: the operator's whole /metrics at the end of the window.
    if (process.env.SVID_BENCH_METRICS_OUT) await writeFile(process.env.SVID_BENCH_METRICS_OUT, lastText);
  } finally {
    stopListening();
  }
}
