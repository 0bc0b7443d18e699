// One scenario on a real node on this machine, for `npm run e2e` (hack/e2e/local.ts) and
// `npm run e2e:pod-certificates` (hack/e2e/pod-certificates.ts): checks that the host can run a node
// (hack/lib/node-host.ts: skipped with the reason, or under CI=true a failure), builds what it needs
// (control plane, node binaries, images; cached after the first run), starts a NodeCluster, runs the
// scenario with kubectl and helm bound to its kubeconfig, and tears everything down, also on failure.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBinaries, ensureNodeBinaries, runBuildScript } from '../lib/binaries.ts';
import { NodeCluster } from '../lib/node-cluster.ts';
import { nodeHostSkipReason } from '../lib/node-host.ts';
import { exec } from './exec.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** What a scenario gets: kubectl and helm for the node cluster, and the chart's directory. */
export interface LocalNodeTools {
  kubectl(args: string[], input?: string): Promise<string>;
  helm(args: string[]): Promise<string>;
  chartDir: string;
}

export type LocalNodeRun<R> =
  { skipped: string } | { result: R; buildSeconds: number; clusterSeconds: number };

export async function runOnLocalNode<R>(
  opts: { log: (line: string) => void; podCertificates?: boolean },
  scenario: (tools: LocalNodeTools) => Promise<R>,
): Promise<LocalNodeRun<R>> {
  const { log } = opts;
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
    ...(opts.podCertificates ? { podCertificates: true } : {}),
    log,
  });
  const clusterSeconds = Math.round((Date.now() - t1) / 1000);
  try {
    const kubeconfig = cluster.kubeconfigPath;
    const result = await scenario({
      kubectl: (args, input) => exec(bins.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], input),
      helm: (args) => exec(bins.helm, [`--kubeconfig=${kubeconfig}`, ...args]),
      chartDir: path.join(root, 'charts', 'svid-operator'),
    });
    return { result, buildSeconds, clusterSeconds };
  } finally {
    const t2 = Date.now();
    const report = await cluster.stop();
    log(`torn down in ${Math.round((Date.now() - t2) / 1000)} s: ${JSON.stringify(report)}`);
  }
}

/** The command-line entry both scripts share: runs, prints the summary and build times, exits 1 on failure. */
export function mainOnLocalNode<R>(
  name: string,
  run: () => Promise<LocalNodeRun<R>>,
  summarize: (result: R) => string,
): void {
  run()
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
      console.error(`${name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
}
