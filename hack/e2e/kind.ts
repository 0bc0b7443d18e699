// The end-to-end scenario (hack/e2e/scenario.ts) against an existing cluster through a kubectl context,
// for hack/e2e-kind.sh: `node hack/e2e/kind.ts --context kind-svid-e2e`. The images svid-operator:e2e
// and svid-example:e2e must already be on the cluster's nodes.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureBinaries } from '../lib/binaries.ts';
import { exec } from './exec.ts';
import { runScenario, summarize } from './scenario.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

const { values } = parseArgs({ options: { context: { type: 'string' } } });
if (!values.context) {
  console.error('usage: node hack/e2e/kind.ts --context <kubectl context>');
  process.exit(2);
}
const context = values.context;
const bins = await ensureBinaries();
try {
  const result = await runScenario({
    kubectl: (args, input) => exec(bins.kubectl, ['--context', context, ...args], input),
    helm: (args) => exec(bins.helm, ['--kube-context', context, ...args]),
    chartDir: path.join(root, 'charts', 'svid-operator'),
    log: (line) => console.error(`e2e-kind: ${line}`),
  });
  console.log(summarize(result));
} catch (err) {
  console.error(`e2e-kind: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
