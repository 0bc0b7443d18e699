import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { getControlPlane } from '../harness/shared-control-plane.ts';

const run = promisify(execFile);

describe('npm run demo', function () {
  this.timeout(3 * 60_000);

  it('issues both identities and shows at least one renewal', async () => {
    const cp = await getControlPlane();
    const { stdout } = await run(
      process.execPath,
      [fileURLToPath(new URL('../../hack/demo.ts', import.meta.url))],
      {
        env: { ...process.env, SVID_DEMO_SECONDS: '28', SVID_DEMO_KUBECONFIG: cp.kubeconfigPath },
      },
    );
    expect(stdout).to.match(
      /frontend +issued +serial [0-9a-f]{16}… +spiffe:\/\/demo\.svid\.dev\/ns\/svid-demo\/sa\/frontend/,
    );
    expect(stdout).to.match(/backend +issued /);
    expect(stdout).to.match(/frontend +renewed serial/);
    expect(stdout).to.contain('demo: operator stopped');
    expect(stdout).not.to.contain('PRIVATE KEY');
  });
});
