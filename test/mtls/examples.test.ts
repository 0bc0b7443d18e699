import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../hack/lib/control-plane.ts';
import { filesOf, id, makePki, SecretVolume } from './fixtures.ts';

const run = promisify(execFile);
const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}.ts`, import.meta.url));

/** The example server on 127.0.0.1:`port` with the SVID in `dir`, allowing the client's SPIFFE ID. */
const startServer = (dir: string, port: number) =>
  spawn(process.execPath, [
    example('server'),
    '--svid-dir',
    dir,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--allow',
    id('client'),
  ]);

describe('mTLS library: the example pair', function () {
  this.timeout(60_000);

  it('client and server talk mTLS through a rotation, and a disallowed client gets 403', async () => {
    const pki = await makePki();
    const serverVol = await SecretVolume.create(filesOf(await pki.issue('server')));
    const clientVol = await SecretVolume.create(filesOf(await pki.issue('client')));
    const otherVol = await SecretVolume.create(filesOf(await pki.issue('other')));
    const port = await freePort();
    const server = startServer(serverVol.dir, port);
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

  it('with --wait-reachable-ms, the client waits for a server that starts later, then every request counts', async () => {
    const pki = await makePki();
    const serverVol = await SecretVolume.create(filesOf(await pki.issue('server')));
    const clientVol = await SecretVolume.create(filesOf(await pki.issue('client')));
    const port = await freePort();
    const args = (waitMs: string) => [
      example('client'),
      '--svid-dir',
      clientVol.dir,
      '--url',
      `https://127.0.0.1:${port}/`,
      '--server-id',
      id('server'),
      '--count',
      '2',
      '--interval-ms',
      '100',
      '--wait-reachable-ms',
      waitMs,
    ];
    let server: ReturnType<typeof spawn> | undefined;
    try {
      // Nothing listens: after its wait the client sends its requests anyway, and they fail and count.
      const gaveUp = await run(process.execPath, args('600')).then(
        () => ({ code: 0, stdout: '' }),
        (err: { stdout: string; code: number }) => err,
      );
      expect(gaveUp.code).to.equal(1);
      const unreachable = gaveUp.stdout.split('\n').find((l) => l.includes('"unreachable"')) ?? '';
      expect(JSON.parse(unreachable)).to.include({ event: 'unreachable', error: 'ECONNREFUSED' });
      expect(gaveUp.stdout).to.match(/^1 error /m);
      // The server starts while the client waits: no request fails.
      const client = spawn(process.execPath, args('30000'));
      let stdout = '';
      client.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = once(client, 'exit');
      for (let i = 0; i < 600 && !stdout.includes('"started"'); i++)
        await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 700));
      server = startServer(serverVol.dir, port);
      const [code] = (await exited) as [number];
      expect(code, stdout).to.equal(0);
      const reachable = JSON.parse(stdout.split('\n').find((l) => l.includes('"reachable"')) ?? '{}') as {
        attempts?: number;
      };
      expect(reachable.attempts, stdout).to.be.greaterThan(1);
      expect(stdout.split('\n').filter((l) => /^\d+ 200 /.test(l))).to.have.length(2);
    } finally {
      server?.kill();
      if (server) await once(server, 'exit');
      for (const v of [serverVol, clientVol]) await v.remove();
    }
  });
});
