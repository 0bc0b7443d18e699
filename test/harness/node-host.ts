import type { Context } from 'mocha';
import { nodeUnsupportedReason } from '../../hack/lib/node-cluster.ts';

/**
 * Skips the calling suite (with the reason in the test report) on a host that cannot run a real node;
 * under CI=true that is a failure instead, so CI never passes without having run the node tests.
 */
export async function requireNodeHost(ctx: Context): Promise<void> {
  const reason = await nodeUnsupportedReason();
  if (!reason) return;
  if (process.env.CI === 'true') throw new Error(`the real-node tests cannot run on this CI host: ${reason}`);
  console.log(`      skipped: ${reason}`);
  ctx.skip();
}
