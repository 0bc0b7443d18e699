import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { demoFailedRequests, demoIssuances, demoRequests } from '../harness/demo-output.ts';
import { requireNodeHost } from '../harness/node-host.ts';

const run = promisify(execFile);
const id = (sa: string) => `spiffe://demo.svid.dev/ns/svid-demo/sa/${sa}`;

// `npm run demo -- --node`, shortened: the example server and client run as pods on a real local node and
// read their SVIDs from Secret volumes the kubelet projects, while the operator (a process on the host)
// renews both. Every request succeeds, and each side presents SVIDs the operator issued.
describe('npm run demo -- --node', function () {
  this.timeout(20 * 60_000);

  let stdout = '';
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`the demo's output:\n${stdout}`);
  });

  it('pods on the node talk mTLS through both SVIDs rotating, with the IDs and serials printed', async function () {
    await requireNodeHost(this);
    try {
      ({ stdout } = await run(
        process.execPath,
        [fileURLToPath(new URL('../../hack/demo.ts', import.meta.url)), '--node', '--seconds', '60'],
        { maxBuffer: 16 * 1024 * 1024 },
      ));
    } catch (err) {
      // A failed demo: what it printed until then is the story (afterEach prints it), with its stderr's end.
      const failed = err as { stdout?: string; stderr?: string; code?: unknown };
      stdout = failed.stdout ?? '';
      throw new Error(
        `the demo exited with ${String(failed.code)}; the end of its stderr:\n${(failed.stderr ?? '').slice(-3000)}`,
        { cause: err },
      );
    }
    expect(stdout).not.to.contain('PRIVATE KEY');
    expect(stdout).to.match(/node svid-node-\w+ Ready after \d+ s/);

    const issued = new Map<string, Set<string>>([
      ['server', new Set()],
      ['client', new Set()],
    ]);
    for (const { sa, serial, spiffeId } of demoIssuances(stdout)) {
      expect(spiffeId).to.equal(id(sa));
      issued.get(sa)?.add(serial);
    }

    const requests = demoRequests(stdout);
    const failed = demoFailedRequests(stdout);
    expect(failed, 'failed requests').to.deep.equal([]);
    expect(requests.length, 'requests').to.be.at.least(40);
    const callerSerials = new Set<string>();
    const serverSerials = new Set<string>();
    for (const { status, caller, callerSerial, server, serverSerial } of requests) {
      expect(status).to.equal('200');
      expect(caller).to.equal(id('client'));
      expect(server).to.equal(id('server'));
      callerSerials.add(callerSerial);
      serverSerials.add(serverSerial);
    }
    // Through at least one rotation of each side, only with SVIDs the operator issued, which reached the
    // pods through the kubelet's Secret volumes (nothing else gives the pods their SVIDs).
    expect(callerSerials.size, 'client SVIDs presented').to.be.at.least(2);
    expect(serverSerials.size, 'server SVIDs presented').to.be.at.least(2);
    for (const s of callerSerials) expect(issued.get('client'), 'issued client SVIDs').to.include(s);
    for (const s of serverSerials) expect(issued.get('server'), 'issued server SVIDs').to.include(s);
    expect(stdout).to.contain(`demo: ${requests.length} requests, 0 failed;`);
    expect(stdout).to.contain('tearing down the node and the control plane (restores the host)');
  });
});
