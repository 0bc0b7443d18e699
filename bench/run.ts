// `npm run bench`: measures what users care about and writes bench/results.json. Every figure is a ratio
// against a reference measured in the same run, or a count, so it holds on a noisy machine.
// `npm run bench -- --smoke` runs each measurement briefly (CI runs it so the script cannot rot);
// `--only signing,library,cluster` runs some sections; `--out FILE` writes the results elsewhere;
// `--long` adds the steady state (10,000 identities with 10-minute SVIDs for 20 minutes, on the same
// control plane after the cluster section); `--long --only steady` runs the steady state alone.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  benchCluster,
  emptyClusterResult,
  OPERATOR_ARGS,
  type ClusterResult,
  type ClusterSizes,
} from './cluster.ts';
import { benchGrpc, type GrpcResult } from './grpc.ts';
import { benchLibrary, type LibraryResult } from './library.ts';
import { benchSigning } from './signing.ts';
import { printTable } from './table.ts';

export type Section = 'signing' | 'library' | 'grpc' | 'cluster' | 'steady';
export const SECTIONS: readonly Section[] = ['signing', 'library', 'grpc', 'cluster', 'steady'];

type Nullable<T> = { [K in keyof T]: T[K] | null };

export interface BenchResults extends ClusterResult {
  machine: {
    cores: number;
    node: string;
    smoke: boolean;
    long: boolean;
    operatorArgs: string[];
    /** os.loadavg() when the run started and when it ended (1, 5, 15 minutes). */
    loadAverage: { start: number[]; end: number[] | null };
    startedAt: string;
  };
  signing: { perSecond: number | null; referencePerSecond: number | null; ratio: number | null };
  library: Nullable<LibraryResult>;
  grpc: Nullable<GrpcResult>;
  /** Why a figure is null: the section was not run, or what stopped it. */
  notMeasured: Record<string, string>;
}

const FULL: ClusterSizes = {
  wave: 1000,
  scaleTo: 10_000,
  unrelatedSecrets: 10_000,
  idleSeconds: 60,
  renewing: 50,
  steady: null,
};
const SMOKE: ClusterSizes = {
  wave: 20,
  scaleTo: 40,
  unrelatedSecrets: 40,
  idleSeconds: 1,
  renewing: 4,
  steady: null,
};
const STEADY_FULL = { identities: 10_000, duration: '10m', windowSeconds: 20 * 60 };
const STEADY_SMOKE = { identities: 20, duration: '30s', windowSeconds: 60 };

/**
 * SVID_BENCH_STEADY=identities,duration,windowSeconds (e.g. 2000,2m,240: the full size's renewal rate in a
 * smaller cluster) replaces the steady state's size, for iterating; results name the size they ran at.
 */
export function steadySizeFromEnv(value: string | undefined): typeof STEADY_FULL | undefined {
  if (!value) return undefined;
  const m = /^(\d+),(\d+[smh]),(\d+)$/.exec(value.trim());
  if (!m) {
    throw new Error(
      `SVID_BENCH_STEADY must be identities,duration,windowSeconds (e.g. 2000,2m,240), not "${value}"`,
    );
  }
  return { identities: Number(m[1]), duration: m[2] as string, windowSeconds: Number(m[3]) };
}

export async function runBench(opts: {
  smoke: boolean;
  long?: boolean;
  out: string;
  only: readonly Section[];
}): Promise<BenchResults> {
  const sizes: ClusterSizes = {
    ...(opts.smoke ? SMOKE : FULL),
    steady:
      opts.long && opts.only.includes('steady')
        ? (steadySizeFromEnv(process.env.SVID_BENCH_STEADY) ?? (opts.smoke ? STEADY_SMOKE : STEADY_FULL))
        : null,
  };
  const results: BenchResults = {
    machine: {
      cores: os.availableParallelism(),
      node: process.version,
      smoke: opts.smoke,
      long: opts.long ?? false,
      operatorArgs: OPERATOR_ARGS,
      loadAverage: { start: os.loadavg(), end: null },
      startedAt: new Date().toISOString(),
    },
    signing: { perSecond: null, referencePerSecond: null, ratio: null },
    library: {
      handshakeRatio: null,
      libraryHandshakesPerSecond: null,
      plainHandshakesPerSecond: null,
      swapP50Ms: null,
      swapP99Ms: null,
      swaps: null,
      failedRequests: null,
      requests: null,
    },
    grpc: {
      callsPerSecond: null,
      plainCallsPerSecond: null,
      callRatio: null,
      cpuCallRatio: null,
      failedCalls: null,
      workloadApiRotations: null,
      workloadApiRotationP50Ms: null,
      workloadApiRotationP99Ms: null,
    },
    ...emptyClusterResult(sizes),
    notMeasured: {},
  };
  const skipped = (section: Section) => {
    if (opts.only.includes(section)) return false;
    results.notMeasured[section] = 'not selected by --only';
    return true;
  };

  if (!skipped('signing')) {
    const signing = await benchSigning(
      opts.smoke ? { rounds: 1, roundMs: 200 } : { rounds: 5, roundMs: 2000 },
    );
    results.signing = {
      perSecond: signing.perSecond,
      referencePerSecond: signing.referencePerSecond,
      ratio: signing.ratio,
    };
  }
  if (!skipped('library')) {
    results.library = await benchLibrary(
      opts.smoke ? { roundMs: 200, rounds: 1, swaps: 5 } : { roundMs: 1000, rounds: 6, swaps: 100 },
    );
  }
  if (!skipped('grpc')) {
    results.grpc = await benchGrpc(
      opts.smoke ? { roundMs: 200, rounds: 1, rotations: 5 } : { roundMs: 2000, rounds: 6, rotations: 100 },
    );
  }
  if (!opts.long) results.notMeasured.steady = 'the steady state runs with --long only';
  else skipped('steady');
  const clusterPhases = !skipped('cluster');
  if (clusterPhases || sizes.steady) {
    try {
      await benchCluster(sizes, results, (line) => console.log(line), { clusterPhases });
    } catch (err) {
      // The figures measured before the failure are kept; the rest stay null with this reason.
      results.notMeasured.cluster = `stopped by: ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  results.machine.loadAverage.end = os.loadavg();
  printTable(results, sizes);
  await writeFile(opts.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${opts.out}`);
  return results;
}

function parseOnly(argv: string[]): Section[] {
  const i = argv.indexOf('--only');
  if (i < 0) return [...SECTIONS];
  const wanted = (argv[i + 1] ?? '').split(',').filter(Boolean);
  const unknown = wanted.filter((w) => !SECTIONS.includes(w as Section));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new Error(
      `--only takes a comma-separated list of ${SECTIONS.join(', ')}; got "${argv[i + 1] ?? ''}"`,
    );
  }
  return wanted as Section[];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const outArg = argv.indexOf('--out');
  const out = outArg >= 0 ? argv[outArg + 1] : undefined;
  await runBench({
    smoke: argv.includes('--smoke'),
    long: argv.includes('--long'),
    only: parseOnly(argv),
    out: out ?? fileURLToPath(new URL('results.json', import.meta.url)),
  });
}
