// The operator's own counters from its /metrics, and waiting for it to go idle.
import type { OperatorProcess } from '../test/harness/operator-process.ts';
import { sumMetric } from '../test/harness/operator-process.ts';
import { rssMb } from './proc.ts';
import { median } from './stats.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Secret+status writes, Event writes, successful issuances, reconciles, and the work queue's depth. */
/** The metrics counters() reads: asked for by name, so the per-identity gauges are not rendered. */
const COUNTER_METRICS = [
  'svid_operator_api_writes_total',
  'svid_operator_issuances_total',
  'svid_operator_workqueue_latency_seconds',
  'svid_operator_workqueue_depth',
  'svid_operator_issuance_pacer_backlog',
  'svid_operator_issuance_pacer_ahead',
  'svid_operator_workqueue_active',
  'svid_operator_workqueue_writing',
];

export async function counters(op: OperatorProcess) {
  const text = await op.metrics(COUNTER_METRICS);
  const sum = (name: string, labels: Record<string, string> = {}) => sumMetric(text, name, labels);
  return {
    writes:
      sum('svid_operator_api_writes_total', { kind: 'secret' }) +
      sum('svid_operator_api_writes_total', { kind: 'status' }),
    events: sum('svid_operator_api_writes_total', { kind: 'event' }),
    issued: sum('svid_operator_issuances_total', { result: 'success' }),
    reconciles: sum('svid_operator_workqueue_latency_seconds_count'),
    depth: sum('svid_operator_workqueue_depth'),
    pacerBacklog: sum('svid_operator_issuance_pacer_backlog'),
    pacerAhead: sum('svid_operator_issuance_pacer_ahead'),
    active: sum('svid_operator_workqueue_active'),
    writing: sum('svid_operator_workqueue_writing'),
  };
}
export type Counters = Awaited<ReturnType<typeof counters>>;

export const perItem = (count: number, items: number) => (items > 0 ? count / items : null);

/** Waits until the operator's queue is empty and its counters have not moved for `quietMs`. */
export async function waitIdle(op: OperatorProcess, quietMs: number, timeoutMs: number): Promise<Counters> {
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

/** The median of several RSS samples a second apart (call it once the operator is idle). */
export async function settledRssMb(op: OperatorProcess, samples: number): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(await rssMb(op.pid ?? 0));
    await sleep(1000);
  }
  return median(values);
}

/**
 * Samples the operator's write rate (Secret + status + Event writes per second) once a second until
 * `stop()`, which resolves to the samples. The loop ends with stop(), so it is bounded by its caller.
 */
export function sampleWriteRates(op: OperatorProcess): { stop(): Promise<number[]> } {
  const rates: number[] = [];
  let sampling = true;
  const loop = (async () => {
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
  return {
    async stop() {
      sampling = false;
      await loop;
      return rates;
    },
  };
}
