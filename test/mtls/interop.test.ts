import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import https from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startSServer } from '../support/pki-fixtures.ts';
import { issueSvid } from '../../src/pki/index.ts';
import { authorizeMemberOf, createHttpsServer, SvidAgent, SvidSource } from '@svid-operator/mtls';
import { filesOf, id, makePki, SecretVolume, type Pki } from './fixtures.ts';

const run = promisify(execFile);

describe('mTLS library: interop with curl and openssl', function () {
  this.timeout(30_000);
  let pki: Pki;
  let dir: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    pki = await makePki();
    dir = await mkdtemp(path.join(os.tmpdir(), 'svid-interop-'));
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await rm(dir, { recursive: true, force: true });
  });

  it("curl --cert/--key/--cacert reaches the library's server, which sees curl's SPIFFE ID", async () => {
    // curl checks the host name, so this server SVID also carries DNS:localhost.
    const serverSvid = await issueSvid(pki.ca, {
      spiffeId: id('server'),
      dnsNames: ['localhost'],
      durationSeconds: 600,
    });
    const volume = await SecretVolume.create(filesOf(serverSvid));
    const source = await SvidSource.open(volume.dir, { logger: null });
    const server = createHttpsServer(
      source,
      { authorize: authorizeMemberOf('mtls.example.org') },
      (req, res) =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ peer: req.spiffeId })),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(
      () => void server.close(),
      () => source.close(),
      () => volume.remove(),
    );
    const client = await pki.issue('curl');
    await writeFile(path.join(dir, 'c.crt'), client.certChainPem);
    await writeFile(path.join(dir, 'c.key'), client.keyPem);
    await writeFile(path.join(dir, 'ca.crt'), client.bundlePem);
    const port = (server.address() as AddressInfo).port;
    const { stdout } = await run('curl', [
      '--silent',
      '--show-error',
      '--fail',
      '--max-time',
      '10',
      '--resolve',
      `localhost:${port}:127.0.0.1`,
      '--cert',
      path.join(dir, 'c.crt'),
      '--key',
      path.join(dir, 'c.key'),
      '--cacert',
      path.join(dir, 'ca.crt'),
      `https://localhost:${port}/`,
    ]);
    expect(JSON.parse(stdout)).to.deep.equal({ peer: id('curl') });
    const refused = await run('curl', [
      '--silent',
      '--max-time',
      '10',
      '--resolve',
      `localhost:${port}:127.0.0.1`,
      '--cacert',
      path.join(dir, 'ca.crt'),
      `https://localhost:${port}/`,
    ]).then(
      () => 'accepted',
      (err: { code: number }) => err.code,
    );
    expect(refused).to.not.equal('accepted');
  });

  it("the library's client talks to openssl s_server -Verify and checks its SPIFFE ID", async () => {
    const serverSvid = await pki.issue('openssl');
    await writeFile(path.join(dir, 's.crt'), serverSvid.certChainPem);
    await writeFile(path.join(dir, 's.key'), serverSvid.keyPem);
    await writeFile(path.join(dir, 's-ca.crt'), serverSvid.bundlePem);
    const server = await startSServer(dir, [
      '-cert',
      's.crt',
      '-key',
      's.key',
      '-CAfile',
      's-ca.crt',
      '-Verify',
      '1',
      '-verify_return_error',
      '-www',
    ]);
    cleanups.push(() => server.stop());
    const port = server.port;
    const volume = await SecretVolume.create(filesOf(await pki.issue('client')));
    const source = await SvidSource.open(volume.dir, { logger: null });
    cleanups.push(
      () => source.close(),
      () => volume.remove(),
    );
    const get = (agent: https.Agent) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        https
          .get(`https://127.0.0.1:${port}/`, { agent }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
    const ok = await get(new SvidAgent(source, { serverId: id('openssl') }, { keepAlive: false }));
    expect(ok.status).to.equal(200);
    // s_server -www echoes the session, which shows it received and verified our client certificate.
    expect(ok.body).to.contain('Client certificate');
    // s_server prints its verification lines asynchronously to the response; wait for them.
    for (let i = 0; i < 50 && !/depth=0 \nverify return:1/.test(server.output()); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(server.output()).to.match(/depth=0 \nverify return:1/);
    await get(new SvidAgent(source, { serverId: id('not-openssl') }, { keepAlive: false })).then(
      () => expect.fail('accepted an unexpected server'),
      (err: Error) => expect(err.message).to.contain('which is not the expected server'),
    );
  });
});
