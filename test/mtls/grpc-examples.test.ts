// The gRPC example pair and the Workload API example, run as the README shows them (child processes).
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../hack/lib/control-plane.ts';
import { FakeWorkloadApi } from '../../hack/lib/fake-workload-api.ts';
import { svidMessage } from '../support/svid-der.ts';
import { filesOf, id, makePki, SecretVolume } from './fixtures.ts';

const run = promisify(execFile);
const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}.ts`, import.meta.url));
const lines = (out: string) =>
  out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('examples: gRPC pair and Workload API client', function () {
  this.timeout(120_000);

  it('grpc-client calls grpc-server over mTLS; a client not allowed gets PERMISSION_DENIED', async () => {
    const pki = await makePki();
    const serverVol = await SecretVolume.create(filesOf(await pki.issue('server')));
    const clientVol = await SecretVolume.create(filesOf(await pki.issue('client')));
    const otherVol = await SecretVolume.create(filesOf(await pki.issue('other')));
    const port = await freePort();
    const server = spawn(process.execPath, [
      example('grpc-server'),
      '--svid-dir',
      serverVol.dir,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--allow',
      id('client'),
    ]);
    let out = '';
    server.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      for (let i = 0; i < 200 && !out.includes('listening'); i++)
        await new Promise((r) => setTimeout(r, 100));
      const args = (dir: string) => [
        example('grpc-client'),
        '--svid-dir',
        dir,
        '--address',
        `127.0.0.1:${port}`,
        '--server-id',
        id('server'),
        '--count',
        '2',
        '--interval-ms',
        '10',
      ];
      const ok = lines((await run(process.execPath, args(clientVol.dir))).stdout);
      expect(ok.map((l) => [l.n, l.caller])).to.deep.equal([
        [0, id('client')],
        [1, id('client')],
      ]);
      const denied = await run(process.execPath, args(otherVol.dir)).catch(
        (e: { code: number; stdout: string }) => e,
      );
      expect((denied as { code: number }).code).to.equal(1);
      expect(lines((denied as { stdout: string }).stdout)[0]).to.deep.equal({
        n: 0,
        code: 7,
        error: `${id('other')} is not allowed to call /svid.test.Echo/Unary`,
      });
    } finally {
      server.kill('SIGTERM');
      await once(server, 'exit');
      for (const v of [serverVol, clientVol, otherVol]) await v.remove();
    }
  });

  it('workload-api-client prints the SVID and a rotation from $SPIFFE_ENDPOINT_SOCKET, and says why when none comes', async () => {
    const pki = await makePki();
    const api = await FakeWorkloadApi.start();
    try {
      const first = await pki.issue('web');
      api.state = { svids: [svidMessage(first)], crl: [], federatedBundles: new Map() };
      const child = spawn(process.execPath, [example('workload-api-client'), '--updates', '1'], {
        env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: api.address },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      for (let i = 0; i < 200 && !out.includes('"svid"'); i++) await new Promise((r) => setTimeout(r, 100));
      const next = await pki.issue('web');
      api.push({ svids: [svidMessage(next)], crl: [], federatedBundles: new Map() });
      const [code] = (await once(child, 'exit')) as [number];
      expect(code).to.equal(0);
      const printed = lines(out);
      expect(printed[0]).to.include({
        event: 'svid',
        spiffeId: first.spiffeId,
        serial: first.serialNumber.toLowerCase(),
      });
      expect(printed[1]).to.include({ event: 'rotated', serial: next.serialNumber.toLowerCase() });

      api.state = undefined;
      const none = await run(process.execPath, [
        example('workload-api-client'),
        '--address',
        api.address,
        '--timeout-ms',
        '500',
      ]).catch((e: { code: number; stderr: string }) => e);
      expect((none as { code: number }).code).to.equal(1);
      expect((none as { stderr: string }).stderr).to.match(
        /no valid SVID arrived from the Workload API at unix:\/\/.* within 500 ms/,
      );
    } finally {
      await api.stop();
    }
  });
});
