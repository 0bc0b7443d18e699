// `npm run e2e`: the end-to-end scenario (hack/e2e/scenario.ts) on a real node on this machine. Builds
// what it needs on first use (node binaries, then the images with buildah; the first run takes tens
// of minutes on 2 cores, later runs reuse the caches), starts the control plane with one node, runs
// the scenario, prints its figures and tears everything down, also on failure.
//
// On a host that cannot run a node (not root, no cgroups, node binaries neither cached nor buildable;
// hack/lib/node-host.ts) it prints "skipped: <reason>" and exits 0,
// except with CI=true, where a skip is a failure (exit 1).
import { fileURLToPath } from 'node:url';
import { mainOnLocalNode, runOnLocalNode, type LocalNodeRun } from './local-node.ts';
import { runScenario, summarize, type ScenarioResult } from './scenario.ts';

const log = (line: string) => console.error(`e2e: ${line}`);

export type LocalE2e = LocalNodeRun<ScenarioResult>;

/** Builds (cached), starts a node cluster, runs the scenario, tears down. */
export function runLocalE2e(opts: { operatorSoakMs?: number } = {}): Promise<LocalE2e> {
  return runOnLocalNode({ log }, (tools) =>
    runScenario({ ...tools, log, operatorSoakMs: opts.operatorSoakMs }),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mainOnLocalNode('e2e', runLocalE2e, summarize);
}
