import { expect } from 'chai';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createHttpsServer, SvidAgent, SvidSource } from '@svid-operator/mtls';
import { filesOf, id, makePki, SecretVolume, type Pki } from './fixtures.ts';

interface Reply {
  status: number;
  /** Serial of the certificate the server presented in this connection's handshake. */
  serial: string;
}

function request(url: string, agent: https.Agent, path = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${url}${path.slice(1)}`, { agent }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '';
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
  });
}

describe('mTLS library: rotation under load', function () {
  this.timeout(120_000);
  let pki: Pki;
  let volume: SecretVolume;
  let clientVolume: SecretVolume;
  let serverSource: SvidSource;
  let clientSource: SvidSource;
  let server: https.Server;
  let url: string;

  before(async () => {
    pki = await makePki();
    volume = await SecretVolume.create(filesOf(await pki.issue('server')));
    clientVolume = await SecretVolume.create(filesOf(await pki.issue('client')));
    serverSource = await SvidSource.open(volume.dir, { logger: null });
    clientSource = await SvidSource.open(clientVolume.dir, { logger: null });
    server = createHttpsServer(serverSource, { authorize: [id('client')] }, (req, res) => {
      // /slow holds its connection across a swap, to show that open connections finish.
      const delay = req.url === '/slow' ? 1500 : 0;
      setTimeout(() => res.writeHead(200).end('ok'), delay);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  after(async () => {
    server.close();
    serverSource.close();
    clientSource.close();
    await volume.remove();
    await clientVolume.remove();
  });

  it('survives 50 kubelet-style swaps under continuous load: no failed request, new serial within 1 s', async () => {
    const fresh = new SvidAgent(clientSource, { serverId: id('server') }, { keepAlive: false });
    const pooled = new SvidAgent(
      clientSource,
      { serverId: id('server') },
      { keepAlive: true, maxSockets: 2 },
    );
    const svids = [];
    for (let i = 0; i < 50; i++) svids.push(await pki.issue('server'));
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const loop = async (agent: https.Agent, path: string) => {
      while (!stop) {
        try {
          const r = await request(url, agent, path);
          if (r.status === 200) ok++;
          else failures.push(`status ${r.status}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const load = [loop(fresh, '/'), loop(fresh, '/'), loop(pooled, '/'), loop(pooled, '/slow')];
    const latencies: number[] = [];
    try {
      for (const svid of svids) {
        const swappedAt = Date.now();
        await volume.swap(filesOf(svid));
        // Poll with new connections until the handshake presents the new serial.
        for (;;) {
          const r = await request(url, fresh);
          if (r.serial === svid.serialNumber) break;
          if (Date.now() - swappedAt > 5000)
            throw new Error(`serial ${svid.serialNumber} not served 5 s after the swap`);
          await new Promise((res) => setTimeout(res, 5));
        }
        latencies.push(Date.now() - swappedAt);
      }
    } finally {
      stop = true;
      await Promise.all(load);
      fresh.destroy();
      pooled.destroy();
    }
    latencies.sort((a, b) => a - b);
    expect(failures, failures.slice(0, 5).join('; ')).to.deep.equal([]);
    expect(ok).to.be.greaterThan(100);
    expect(latencies.at(-1), `swap-to-new-serial latencies (ms): ${latencies.join(',')}`).to.be.below(1000);
    expect(serverSource.current().serialNumber).to.equal(svids.at(-1)?.serialNumber);
  });

  it('keeps serving the old SVID on a truncated, malformed or mismatched update, and takes the next good one', async () => {
    const agent = new SvidAgent(clientSource, { serverId: id('server') }, { keepAlive: false });
    const before = serverSource.current().serialNumber;
    const good = await pki.issue('server');
    const other = await pki.issue('server');
    const errors: string[] = [];
    serverSource.on('error', (err) => errors.push(err.message));
    const bad = [
      {
        ...filesOf(good),
        'tls.crt': good.certChainPem.replace(/(CERTIFICATE-----\n[\s\S]{100})[\s\S]*?(\n-----END)/, '$1$2'),
      },
      { ...filesOf(good), 'tls.crt': 'not a certificate' },
      { ...filesOf(good), 'tls.key': other.keyPem },
      { ...filesOf(await pki.issue('server', { ca: pki.otherCa })), 'ca.crt': good.bundlePem },
    ];
    const expected = [
      'the certificate file holds a truncated or corrupt certificate',
      'the certificate file holds no PEM certificate',
      'the private key does not match the certificate',
      'the certificate does not chain to the trust bundle',
    ];
    for (const [i, files] of bad.entries()) {
      await volume.swap(files);
      await serverSource.reload();
      expect(errors[i]).to.equal(expected[i]);
      expect((await request(url, agent)).serial).to.equal(before);
    }
    await volume.swap(filesOf(good));
    await serverSource.reload();
    expect((await request(url, agent)).serial).to.equal(good.serialNumber);
    agent.destroy();
  });

  it('follows plain file writes too, and warns before an unrotated SVID expires', async () => {
    const { writeFile, mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(`${tmpdir()}/svid-plain-`);
    const short = await pki.issue('plain', { durationSeconds: 2 });
    for (const [f, c] of Object.entries(filesOf(short))) await writeFile(`${dir}/${f}`, c);
    const source = await SvidSource.open(dir, { logger: null, expiryWarningFraction: 0.5 });
    try {
      const expiring = once(source, 'expiring');
      const next = await pki.issue('plain');
      const updated = once(source, 'update');
      // One write at a time, as a tool that rewrites files in place would: cert first, then key.
      await writeFile(`${dir}/tls.crt`, next.certChainPem);
      await writeFile(`${dir}/tls.key`, next.keyPem);
      const [svid] = (await updated) as [{ serialNumber: string }];
      expect(svid.serialNumber).to.equal(next.serialNumber);
      const short2 = await pki.issue('plain', { durationSeconds: 2 });
      for (const [f, c] of Object.entries(filesOf(short2))) await writeFile(`${dir}/${f}`, c);
      await source.reload();
      await expiring;
    } finally {
      source.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
