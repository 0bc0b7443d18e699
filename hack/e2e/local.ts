// `npm run e2e`: the end-to-end scenario (hack/e2e/scenario.ts) on a real node on this machine. Builds
// what it needs on first use (node binaries, then the images with buildah; the first run takes tens
// of minutes on 2 cores, later runs reuse the caches), starts the control plane with one node, runs
// the scenario, prints its figures and tears everything down, also on failure.
//
// On a host that cannot run a node (not root, no cgroups, node binaries neither cached nor buildable;
// hack/lib/node-host.ts) it prints "skipped: <reason>" and exits 0,
// except with CI=true, where a skip is a failure (exit 1).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBinaries, ensureNodeBinaries, runBuildScript } from '../lib/binaries.ts';
import { NodeCluster } from '../lib/node-cluster.ts';
import { nodeHostSkipReason } from '../lib/node-host.ts';
import { exec } from './exec.ts';
import { runScenario, summarize, type ScenarioResult } from './scenario.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const log = (line: string) => console.error(`e2e: ${line}`);

export type LocalE2e =
  { skipped: string } | { result: ScenarioResult; buildSeconds: number; clusterSeconds: number };

/** Builds (cached), starts a node cluster, runs the scenario, tears down. */
export async function runLocalE2e(opts: { operatorSoakMs?: number } = {}): Promise<LocalE2e> {
  const reason = await nodeHostSkipReason();
  if (reason) return { skipped: reason };
  const t0 = Date.now();
  log('building the control plane, the node and the images (cached after the first run)');
  const bins = await ensureBinaries();
  await ensureNodeBinaries();
  const images = await runBuildScript('build-images.sh');
  const buildSeconds = Math.round((Date.now() - t0) / 1000);
  const t1 = Date.now();
  const cluster = await NodeCluster.start({
    images: [path.join(images, 'operator.tar'), path.join(images, 'example.tar')],
    log,
  });
  const clusterSeconds = Math.round((Date.now() - t1) / 1000);
  try {
    const kubeconfig = cluster.kubeconfigPath;
    const result = await runScenario({
      kubectl: (args, input) => exec(bins.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], input),
      helm: (args) => exec(bins.helm, [`--kubeconfig=${kubeconfig}`, ...args]),
      chartDir: path.join(root, 'charts', 'svid-operator'),
      log,
      operatorSoakMs: opts.operatorSoakMs,
    });
    return { result, buildSeconds, clusterSeconds };
  } finally {
    const t2 = Date.now();
    const report = await cluster.stop();
    log(`torn down in ${Math.round((Date.now() - t2) / 1000)} s: ${JSON.stringify(report)}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runLocalE2e()
    .then((r) => {
      if ('skipped' in r) {
        console.log(`skipped: ${r.skipped}`);
        return;
      }
      console.log(summarize(r.result));
      console.log(
        `build (cached after the first run): ${r.buildSeconds} s; cluster start: ${r.clusterSeconds} s`,
      );
    })
    .catch((err: unknown) => {
      console.error(`e2e: FAILED: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
}
