// `npm run demo`: starts (or reuses) the local control plane with the CRDs installed and prints how to
// reach it. The operator issue extends this into the full issue-and-renew demo.
import { fileURLToPath } from 'node:url';
import { ensureBinaries } from './lib/binaries.ts';
import { clusterUp } from './cluster.ts';

async function main(): Promise<void> {
  const kubeconfig = await clusterUp();
  const { kubectl } = await ensureBinaries();
  console.log('\nThe local control plane is running on 127.0.0.1. Reach it with:');
  console.log(`  export KUBECONFIG=${kubeconfig}`);
  console.log(`  ${kubectl} get --raw /readyz`);
  console.log(`  ${kubectl} get workloadidentities -A`);
  console.log('Stop it with: npm run cluster:down');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
