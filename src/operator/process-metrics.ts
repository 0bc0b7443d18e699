// prom-client's default process and Node.js metrics (CPU, memory, heap spaces, file descriptors, event loop
// lag, handles, version) except `nodejs_gc_duration_seconds`. That histogram is fed by a PerformanceObserver
// on every garbage collection, and with the image's --max-semi-space-size=2 the young generation is
// collected hundreds of times a second during a wave: the observer's callback and the PerformanceEntry
// built for each collection were ~2 % of the operator's sampled CPU at the 1,000-identity wave
// (hack/profile-wave.ts --cpu-prof). No alert, dashboard or test of this repository reads the GC metric.
// collectDefaultMetrics takes no list of metrics to leave out, so each default metric's module is called
// here as collectDefaultMetrics calls it (prom-client/lib/defaultMetrics.js, same config).
import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';

const require = createRequire(import.meta.url);

/** The modules under prom-client/lib/metrics/ that collectDefaultMetrics runs, without gc. */
export const PROCESS_METRIC_MODULES = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
] as const;

/** The default metric left out (see above). */
export const LEFT_OUT_METRICS = ['nodejs_gc_duration_seconds'] as const;

type MetricModule = (registry: Registry, config: { eventLoopMonitoringPrecision: number }) => void;

/** Registers prom-client's default metrics in `registry`, all but the GC duration histogram. */
export function collectProcessMetrics(registry: Registry): void {
  for (const name of PROCESS_METRIC_MODULES) {
    const register = require(`prom-client/lib/metrics/${name}.js`) as MetricModule;
    register(registry, { eventLoopMonitoringPrecision: 10 });
  }
}
