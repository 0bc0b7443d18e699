// `npm run bench`: measures what users care about and writes bench/results.json. Every figure is a ratio
// against a reference measured in the same run, or a count, so it holds on a noisy machine.
// `npm run bench -- --smoke` runs each measurement briefly (CI runs it so the script cannot rot);
// `--only signing,library,cluster` runs some sections; `--out FILE` writes the results elsewhere.
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

export type Section = 'signing' | 'library' | 'grpc' | 'cluster';
export const SECTIONS: readonly Section[] = ['signing', 'library', 'grpc', 'cluster'];

type Nullable<T> = { [K in keyof T]: T[K] | null };

export interface BenchResults extends ClusterResult {
  machine: { cores: number; node: string; smoke: boolean; operatorArgs: string[] };
  signing: { perSecond: number | null; referencePerSecond: number | null; ratio: number | null };
  library: Nullable<LibraryResult>;
  grpc: Nullable<GrpcResult>;
  /** Why a figure is null: the section was not run, or what stopped it. */
  notMeasured: Record<string, string>;
}

const FULL: ClusterSizes = { wave: 1000, scaleTo: 10_000, unrelatedSecrets: 10_000, renewing: 50 };
const SMOKE: ClusterSizes = { wave: 20, scaleTo: 40, unrelatedSecrets: 40, renewing: 4 };

export async function runBench(opts: {
  smoke: boolean;
  out: string;
  only: readonly Section[];
}): Promise<BenchResults> {
  const sizes = opts.smoke ? SMOKE : FULL;
  const results: BenchResults = {
    machine: {
      cores: os.availableParallelism(),
      node: process.version,
      smoke: opts.smoke,
      operatorArgs: OPERATOR_ARGS,
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
  if (!skipped('cluster')) {
    try {
      await benchCluster(sizes, results, (line) => console.log(line));
    } catch (err) {
      // The figures measured before the failure are kept; the rest stay null with this reason.
      results.notMeasured.cluster = `stopped by: ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  printTable(results, sizes);
  await writeFile(opts.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${opts.out}`);
  return results;
}

function printTable(r: BenchResults, sizes: ClusterSizes): void {
  const fmt = (n: number | null, digits = 1) => (n === null ? 'n/a' : n.toFixed(digits));
  const { signing, library: lib, grpc, ttr, writes, memory, caRotation } = r;
  const rows: [string, string, string][] = [
    ['signing: SVIDs/s (ECDSA P-256, one core)', fmt(signing.perSecond), ''],
    ['signing: node:crypto keygen + sign /s', fmt(signing.referencePerSecond), ''],
    ['signing: ratio', fmt(signing.ratio, 3), 'target >= 0.4'],
    [`time to Ready: p50 ms (${sizes.wave} identities)`, fmt(ttr.p50Ms, 0), ''],
    ['time to Ready: p99 ms', fmt(ttr.p99Ms, 0), ''],
    ['time to Ready: all Ready, s after last create', fmt(ttr.allReadySeconds), 'target <= 20'],
    ...Object.entries(ttr.cpuSeconds ?? {}).map(([name, seconds]): [string, string, string] => [
      `  CPU s during the wave: ${name}`,
      fmt(seconds),
      '',
    ]),
    ['writes per issued SVID (Secret + status)', fmt(writes.perIssue, 2), 'target <= 2'],
    ['  Events per issued SVID', fmt(writes.eventsPerIssue, 2), ''],
    ['writes per renewal (Secret + status)', fmt(writes.perRenewal, 2), ''],
    ['  Events per renewal', fmt(writes.eventsPerRenewal, 2), ''],
    ['writes after a restart, all up to date', fmt(writes.afterRestart, 0), 'target 0'],
    ['  Events after that restart', fmt(writes.eventsAfterRestart, 0), ''],
    [`memory: RSS MB, ${sizes.scaleTo} identities Ready`, fmt(memory.rssMb10k), 'target <= 200'],
    [
      `memory: RSS MB, + ${sizes.unrelatedSecrets} unrelated Secrets`,
      fmt(memory.rssMb10kWithUnrelatedSecrets),
      'no rise',
    ],
    [`CA rotation: s to re-issue ${sizes.wave}`, fmt(caRotation.seconds), ''],
    ['CA rotation: peak API writes/s', fmt(caRotation.peakWritesPerSecond), ''],
    ['library: handshakes/s, reloading server', fmt(lib.libraryHandshakesPerSecond), ''],
    ['library: handshakes/s, plain node:tls', fmt(lib.plainHandshakesPerSecond), ''],
    ['library: handshake ratio', fmt(lib.handshakeRatio, 3), 'target >= 0.95'],
    [`library: swap -> new cert p50 ms (${lib.swaps ?? 0} swaps)`, fmt(lib.swapP50Ms), ''],
    ['library: swap -> new cert p99 ms', fmt(lib.swapP99Ms), 'target <= 1000'],
    [`library: failed requests of ${lib.requests ?? 0} during swaps`, fmt(lib.failedRequests, 0), 'target 0'],
    ['gRPC: calls/s, rotating SVID credentials', fmt(grpc.callsPerSecond), ''],
    ['gRPC: calls/s, plain grpc-js TLS credentials', fmt(grpc.plainCallsPerSecond), ''],
    ['gRPC: call ratio', fmt(grpc.callRatio, 3), 'target >= 0.95'],
    ['gRPC: calls per CPU-second ratio', fmt(grpc.cpuCallRatio, 3), ''],
    ['gRPC: failed calls', fmt(grpc.failedCalls, 0), 'target 0'],
    [
      `Workload API: rotation -> new SVID p50 ms (${grpc.workloadApiRotations ?? 0})`,
      fmt(grpc.workloadApiRotationP50Ms),
      '',
    ],
    ['Workload API: rotation -> new SVID p99 ms', fmt(grpc.workloadApiRotationP99Ms), 'target <= 1000'],
  ];
  console.log(
    `\nmachine: ${r.machine.cores} cores, Node ${r.machine.node}${r.machine.smoke ? ' (smoke run)' : ''}`,
  );
  for (const [name, value, target] of rows)
    console.log(`${name.padEnd(52)} ${value.padStart(12)}  ${target}`);
  for (const [what, why] of Object.entries(r.notMeasured)) console.log(`not measured: ${what}: ${why}`);
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
    only: parseOnly(argv),
    out: out ?? fileURLToPath(new URL('results.json', import.meta.url)),
  });
}
