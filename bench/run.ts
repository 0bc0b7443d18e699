// `npm run bench`: measures what users care about and writes bench/results.json. Every figure is a ratio
// against a reference measured in the same run, or a count, so it holds on a noisy machine.
// `npm run bench -- --smoke` runs each measurement briefly (CI runs it so the script cannot rot).
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchLibrary } from './library.ts';
import { benchSigning } from './signing.ts';

export interface BenchResults {
  machine: { cores: number; node: string; smoke: boolean };
  signing: { perSecond: number | null; referencePerSecond: number | null; ratio: number | null };
  library: {
    handshakeRatio: number | null;
    libraryHandshakesPerSecond: number | null;
    plainHandshakesPerSecond: number | null;
    swapP50Ms: number | null;
    swapP99Ms: number | null;
    swaps: number | null;
    failedRequests: number | null;
    requests: number | null;
  };
}

export async function runBench(opts: { smoke: boolean; out: string }): Promise<BenchResults> {
  const results: BenchResults = {
    machine: { cores: os.availableParallelism(), node: process.version, smoke: opts.smoke },
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
  };
  const signing = await benchSigning(opts.smoke ? { rounds: 1, roundMs: 200 } : { rounds: 5, roundMs: 2000 });
  results.signing = {
    perSecond: signing.perSecond,
    referencePerSecond: signing.referencePerSecond,
    ratio: signing.ratio,
  };

  results.library = await benchLibrary(
    opts.smoke ? { roundMs: 200, rounds: 1, swaps: 5 } : { roundMs: 1000, rounds: 6, swaps: 100 },
  );
  const lib = results.library;

  const fmt = (n: number | null, digits = 1) => (n === null ? 'n/a' : n.toFixed(digits));
  const rows: [string, string, string][] = [
    ['signing: SVIDs/s (ECDSA P-256, one core)', fmt(signing.perSecond), ''],
    ['signing: node:crypto keygen + sign /s', fmt(signing.referencePerSecond), ''],
    ['signing: ratio', fmt(signing.ratio, 3), 'target >= 0.4'],
    ['library: handshakes/s, reloading server', fmt(lib.libraryHandshakesPerSecond), ''],
    ['library: handshakes/s, plain node:tls', fmt(lib.plainHandshakesPerSecond), ''],
    ['library: handshake ratio', fmt(lib.handshakeRatio, 3), 'target >= 0.95'],
    [`library: swap -> new cert p50 ms (${lib.swaps} swaps)`, fmt(lib.swapP50Ms), ''],
    ['library: swap -> new cert p99 ms', fmt(lib.swapP99Ms), 'target <= 1000'],
    [`library: failed requests of ${lib.requests} during swaps`, fmt(lib.failedRequests, 0), 'target 0'],
  ];
  console.log(
    `\nmachine: ${results.machine.cores} cores, Node ${results.machine.node}${opts.smoke ? ' (smoke run)' : ''}`,
  );
  for (const [name, value, target] of rows)
    console.log(`${name.padEnd(48)} ${value.padStart(12)}  ${target}`);
  await writeFile(opts.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${opts.out}`);
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const smoke = process.argv.includes('--smoke');
  const outArg = process.argv.indexOf('--out');
  const out = outArg > 0 ? process.argv[outArg + 1] : undefined;
  await runBench({ smoke, out: out ?? fileURLToPath(new URL('results.json', import.meta.url)) });
}
