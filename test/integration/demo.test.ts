import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { demoFailedRequests, demoIssuances, demoRequests } from '../harness/demo-output.ts';
import { getControlPlane } from '../harness/shared-control-plane.ts';

const run = promisify(execFile);
const id = (sa: string) => `spiffe://demo.svid.dev/ns/svid-demo/sa/${sa}`;
const gone = (dir: string) =>
  access(dir).then(
    () => false,
    () => true,
  );

// The process-mode demo, shortened: the operator issues and renews, the example server and client read
// kubelet-style projected Secret volumes, and every request succeeds while both SVIDs rotate.
describe('npm run demo', function () {
  this.timeout(4 * 60_000);

  let stdout = '';
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`the demo's output:\n${stdout}`);
  });

  it('serves every request over mTLS while both SVIDs rotate, printing IDs and serials', async () => {
    const cp = await getControlPlane();
    ({ stdout } = await run(
      process.execPath,
      [fileURLToPath(new URL('../../hack/demo.ts', import.meta.url)), '--seconds', '55'],
      { env: { ...process.env, SVID_DEMO_KUBECONFIG: cp.kubeconfigPath }, maxBuffer: 16 * 1024 * 1024 },
    ));
    expect(stdout).not.to.contain('PRIVATE KEY');
    // What the operator issued, from the identities' status.
    const issued = new Map<string, Set<string>>([
      ['server', new Set()],
      ['client', new Set()],
    ]);
    for (const { sa, serial, spiffeId } of demoIssuances(stdout)) {
      expect(spiffeId).to.equal(id(sa));
      issued.get(sa)?.add(serial);
    }
    expect(issued.get('server')?.size, 'server issuances').to.be.at.least(2);
    expect(issued.get('client')?.size, 'client issuances').to.be.at.least(2);

    // What each request saw: the caller's ID and serial as the server verified them, the server's serial.
    const requests = demoRequests(stdout);
    const failed = demoFailedRequests(stdout);
    expect(failed, 'failed requests').to.deep.equal([]);
    expect(requests.length, 'requests').to.be.at.least(30);
    const callerSerials = new Set<string>();
    const serverSerials = new Set<string>();
    for (const { status, caller, callerSerial, server, serverSerial } of requests) {
      expect(status).to.equal('200');
      expect(caller).to.equal(id('client'));
      expect(server).to.equal(id('server'));
      callerSerials.add(callerSerial);
      serverSerials.add(serverSerial);
    }
    // Requests went on through at least one rotation of each side, with SVIDs the operator issued.
    expect(callerSerials.size, 'client SVIDs presented').to.be.at.least(2);
    expect(serverSerials.size, 'server SVIDs presented').to.be.at.least(2);
    // ...and each of them came through the projected Secret volume.
    const projected = new Map<string, Set<string>>([
      ['server', new Set()],
      ['client', new Set()],
    ]);
    for (const m of stdout.matchAll(
      /(?:projected Secret svid-demo\/(server|client)-svid into .*: serial|\] (server|client) +Secret changed: .* \(serial) ([0-9a-f]{16})…/g,
    ))
      projected.get(m[1] ?? m[2] ?? '')?.add(m[3] ?? '');
    for (const s of callerSerials) expect(projected.get('client'), 'projected client SVIDs').to.include(s);
    for (const s of serverSerials) expect(projected.get('server'), 'projected server SVIDs').to.include(s);
    expect(stdout).to.match(
      /server +example server picked up its new SVID, serial [0-9a-f]{16}… \(no restart\)/,
    );
    expect(stdout).to.contain(
      `demo: ${requests.length} requests, 0 failed; the client presented ${callerSerials.size} SVIDs`,
    );

    // The projected volumes were kubelet-style and are gone after the run.
    const dirs = [...stdout.matchAll(/projected Secret svid-demo\/\S+ into (\S+) \(\.\.data/g)].map(
      (m) => m[1] ?? '',
    );
    expect(dirs).to.have.length(2);
    for (const d of dirs) expect(await gone(d), d).to.equal(true);
    expect(stdout).to.match(/client +Secret changed: \S+\/\.\.data now points at a new directory/);
  });
});
