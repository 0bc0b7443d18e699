import type { Context } from 'mocha';
import { nodeHostSkipReason } from '../../hack/lib/node-host.ts';

/**
 * Skips the calling test or suite (the reason printed and in the test report) on a host that cannot run
 * a real node; under CI=true that is a failure instead (hack/lib/node-host.ts), so CI never passes
 * without having run the node tests.
 */
export async function requireNodeHost(ctx: Context): Promise<void> {
  const reason = await nodeHostSkipReason();
  if (!reason) return;
  console.log(`      skipped: ${reason}`);
  ctx.skip();
}
