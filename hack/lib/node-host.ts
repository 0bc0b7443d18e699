// Whether the real-node tests (test/node/) and `npm run e2e` can run on this host, decided once for all
// of them: a host that cannot run a node (not Linux, not root, no cgroups, missing tools, node binaries
// neither cached nor buildable) is a skip with the reason, except under CI=true, where a skip would let
// a submission pass without the node tests, so it is a failure with the same reason.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeUnsupportedReason } from './node-cluster.ts';

const run = promisify(execFile);
const buildNode = fileURLToPath(new URL('../build-node.sh', import.meta.url));

/** Why the node binaries can be neither taken from the cache nor built here, or undefined. */
export async function nodeBinariesUnavailableReason(): Promise<string | undefined> {
  try {
    await run('bash', [buildNode, '--check']);
    return undefined;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; message: string };
    if (e.code === 3 && e.stdout?.trim()) return e.stdout.trim();
    throw new Error(`hack/build-node.sh --check failed: ${e.message}`, { cause: err });
  }
}

/**
 * The decision for one reason (undefined: the host can run a node): undefined to run, the reason to
 * skip, or an Error to throw under CI=true.
 */
export function nodeHostDecision(
  reason: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { run: true } | { skip: string } | { fail: Error } {
  if (reason === undefined) return { run: true };
  if (env.CI === 'true')
    return {
      fail: new Error(
        `the real-node tests cannot run on this CI host, and CI must not pass without them: ${reason}`,
      ),
    };
  return { skip: reason };
}

/** Undefined when this host runs a node; the skip reason otherwise; throws under CI=true. */
export async function nodeHostSkipReason(): Promise<string | undefined> {
  const reason = (await nodeUnsupportedReason()) ?? (await nodeBinariesUnavailableReason());
  const d = nodeHostDecision(reason);
  if ('fail' in d) throw d.fail;
  return 'skip' in d ? d.skip : undefined;
}
