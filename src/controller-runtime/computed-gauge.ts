// A Prometheus gauge whose samples are computed when it is scraped, from state the process holds anyway.
// prom-client's Gauge keeps one series object (labels, value, a hash key) per label set for as long as the
// process runs: with a series per WorkloadIdentity that was ~600 bytes per identity at 10,000 identities
// (three gauges), a copy of what the identity cache already says. Here nothing is kept between scrapes,
// and a deleted object's series disappears with it (no forgotten `remove`).
import type { Metric, Registry } from 'prom-client';

export interface GaugeSample<L extends string> {
  labels: Record<L, string>;
  value: number;
}

export class ComputedGauge<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'gauge';
  readonly aggregator = 'sum';
  private readonly collect: () => Iterable<GaugeSample<L>>;

  constructor(o: {
    name: string;
    help: string;
    registers: Registry[];
    collect: () => Iterable<GaugeSample<L>>;
  }) {
    this.name = o.name;
    this.help = o.help;
    this.collect = o.collect;
    for (const r of o.registers) r.registerMetric(this as unknown as Metric);
  }

  /** What prom-client's registry reads on a scrape. Samples with a non-finite value are left out. */
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: GaugeSample<L>[];
  }> {
    const values: GaugeSample<L>[] = [];
    for (const s of this.collect()) if (Number.isFinite(s.value)) values.push(s);
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  /** Nothing to reset: the samples are computed on each scrape (registry.resetMetrics() calls this). */
  reset(): void {}
}
