import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../hack/lib/control-plane.ts';
import { filesOf, id, makePki, SecretVolume } from './fixtures.ts';

const run = promisify(execFile);
const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}.ts`, import.meta.url));

describe('mTLS library: the example pair', function () {
  this.timeout(60_000);

  it('client and server talk mTLS through a rotation, and a disallowed client gets 403', async () => {
    const pki = await makePki();
    const serverVol = await SecretVolume.create(filesOf(await pki.issue('server')));
    const clientVol = await SecretVolume.create(filesOf(await pki.issue('client')));
    const otherVol = await SecretVolume.create(filesOf(await pki.issue('other')));
    const port = await freePort();
    const server = spawn(process.execPath, [
      example('server'),
      '--svid-dir',
      serverVol.dir,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--allow',
      id('client'),
    ]);
    let out = '';
    server.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      for (let i = 0; i < 100 && !out.includes('listening'); i++)
        await new Promise((r) => setTimeout(r, 100));
      const url = `https://127.0.0.1:${port}/`;
      const clientArgs = (dir: string, count: number) => [
        example('client'),
        '--svid-dir',
        dir,
        '--url',
        url,
        '--server-id',
        id('server'),
        '--count',
        String(count),
        '--interval-ms',
        '200',
      ];
      // The client's request lines (`<n> <status> <body>`); it also prints JSON lines about its own SVID.
      const requestLines = (stdout: string) => stdout.split('\n').filter((l) => /^\d+ /.test(l));
      const before = await run(process.execPath, clientArgs(clientVol.dir, 1));
      const [firstLine = ''] = requestLines(before.stdout);
      const first = JSON.parse(firstLine.split(' ').slice(2).join(' ')) as {
        peer: string;
        serial: string;
      };
      expect(first.peer).to.equal(id('client'));
      const rotated = await pki.issue('server');
      // Swap once the client has had its first answer (not after a fixed delay: under load the client's
      // start-up alone can take longer than any delay chosen here).
      const during = spawn(process.execPath, clientArgs(clientVol.dir, 10));
      let stdout = '';
      during.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = once(during, 'exit');
      for (let i = 0; i < 600 && requestLines(stdout).length === 0 && during.exitCode === null; i++)
        await new Promise((r) => setTimeout(r, 50));
      await serverVol.swap(filesOf(rotated));
      await exited;
      const lines = requestLines(stdout);
      expect(lines).to.have.length(10);
      for (const line of lines) expect(line).to.match(/^\d+ 200 /);
      expect(lines.at(-1)).to.contain(rotated.serialNumber);
      expect(lines[0]).to.contain(first.serial);
      const refused = await run(process.execPath, clientArgs(otherVol.dir, 1)).then(
        () => 'accepted',
        (err: { stdout: string; code: number }) => `${err.code} ${requestLines(err.stdout).join('\n')}`,
      );
      expect(refused).to.match(/^1 1 403 .*not allowed/);
    } finally {
      server.kill();
      await once(server, 'exit');
      for (const v of [serverVol, clientVol, otherVol]) await v.remove();
    }
  });
});
