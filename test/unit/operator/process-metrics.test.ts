import { expect } from 'chai';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { collectProcessMetrics, LEFT_OUT_METRICS } from '../../../src/operator/process-metrics.ts';

const names = async (registry: Registry) => (await registry.getMetricsAsJSON()).map((m) => m.name).sort();

describe('operator process metrics: prom-client defaults without the GC histogram', () => {
  it("registers every one of collectDefaultMetrics' metrics except nodejs_gc_duration_seconds", async () => {
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults });
    const ours = new Registry();
    collectProcessMetrics(ours);
    const expected = (await names(defaults)).filter(
      (n) => !(LEFT_OUT_METRICS as readonly string[]).includes(n),
    );
    expect(await names(defaults)).to.include('nodejs_gc_duration_seconds');
    expect(await names(ours)).to.deep.equal(expected);
  });

  it('the metrics carry values: CPU, resident memory, heap spaces, event loop lag', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry);
    const text = await registry.metrics();
    expect(text).to.match(/^process_cpu_user_seconds_total \d/m);
    expect(text).to.match(/^process_resident_memory_bytes [1-9]\d*/m);
    expect(text).to.match(/^nodejs_heap_space_size_used_bytes\{space="old"\} \d/m);
    expect(text).to.match(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).not.to.include('nodejs_gc_duration_seconds');
  });
});
