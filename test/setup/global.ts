import { stopSharedControlPlane } from '../harness/shared-control-plane.ts';

// Integration suites start the shared control plane lazily (see test/harness); whatever was started is
// stopped here, after the last suite, whether tests passed or failed.
export async function mochaGlobalTeardown(): Promise<void> {
  await stopSharedControlPlane();
}
