import { expect } from 'chai';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { fetch as undiciFetch, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import {
  createHttp2Server,
  createHttpsServer,
  createTlsServer,
  SvidAgent,
  SvidDispatcher,
  SvidError,
  SvidSource,
} from '@svid-operator/mtls';
import { filesOf, id, makePki, SecretVolume, type Pki } from './fixtures.ts';

const port = (s: { address(): unknown }) => (s.address() as AddressInfo).port;

function get(url: string, agent: https.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('mTLS library: handshakes and authorization', function () {
  this.timeout(30_000);
  let pki: Pki;
  const volumes: SecretVolume[] = [];
  const sources: SvidSource[] = [];
  let server: https.Server;
  let url: string;

  const sourceFor = async (svid: Awaited<ReturnType<Pki['issue']>>) => {
    const v = await SecretVolume.create(filesOf(svid));
    volumes.push(v);
    const s = await SvidSource.open(v.dir, { logger: null });
    sources.push(s);
    return s;
  };

  before(async () => {
    pki = await makePki();
    const serverSource = await sourceFor(await pki.issue('server'));
    server = createHttpsServer(serverSource, { authorize: [id('client')] }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ peer: req.spiffeId }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${port(server)}/`;
  });

  after(async () => {
    server.close();
    for (const s of sources) s.close();
    for (const v of volumes) await v.remove();
  });

  it('completes a mutual handshake between SVIDs of one trust domain and exposes the peer ID', async () => {
    const agent = new SvidAgent(await sourceFor(await pki.issue('client')), { serverId: id('server') });
    const res = await get(url, agent);
    expect(res.status).to.equal(200);
    expect(JSON.parse(res.body)).to.deep.equal({ peer: id('client') });
    agent.destroy();
  });

  it('refuses a client without a certificate, from another CA, or expired', async () => {
    const bundle = (await pki.issue('x')).bundlePem;
    const noCert = new https.Agent({ ca: bundle, checkServerIdentity: () => undefined });
    await get(url, noCert).then(
      (r) => expect.fail(`accepted with status ${r.status}`),
      (err: Error) => expect(err.message).to.match(/certificate required|alert|socket hang up|ECONNRESET/i),
    );
    const foreign = new SvidAgent(await sourceFor(await pki.issue('client', { ca: pki.otherCa })), {
      serverId: id('server'),
    });
    await get(url, foreign).then(
      () => expect.fail('accepted a client from another CA'),
      (err: Error) => expect(err.message).to.match(/unknown ca|certificate|alert|self.signed|unable to get/i),
    );
    const expired = await pki.issue('client', { now: new Date(Date.now() - 7200_000), durationSeconds: 600 });
    const expiredAgent = new https.Agent({
      cert: expired.certChainPem,
      key: expired.keyPem,
      ca: expired.bundlePem,
      checkServerIdentity: () => undefined,
    });
    await get(url, expiredAgent).then(
      () => expect.fail('accepted an expired client certificate'),
      (err: Error) => expect(err.message).to.match(/expired|alert|certificate|socket hang up|ECONNRESET/i),
    );
  });

  it('answers 403 to a valid SVID that is not on the allow-list', async () => {
    const agent = new SvidAgent(await sourceFor(await pki.issue('intruder')), { serverId: id('server') });
    const res = await get(url, agent);
    expect(res.status).to.equal(403);
    expect(JSON.parse(res.body)).to.deep.equal({
      error: `${id('intruder')} is not allowed to call this service`,
    });
  });

  it('verifies the server by SPIFFE ID, not by host name', async () => {
    const agent = new SvidAgent(await sourceFor(await pki.issue('client')), { serverId: id('someone-else') });
    await get(url, agent).then(
      () => expect.fail('talked to the wrong server'),
      (err: Error) =>
        expect(err.message).to.contain(`the server is ${id('server')}, which is not the expected server`),
    );
    expect(() => new SvidAgent(sources[0] as SvidSource, {})).to.throw(/pass serverId/);
  });

  it('works with fetch through the undici dispatcher (undici fetch and global fetch)', async () => {
    const dispatcher = new SvidDispatcher(await sourceFor(await pki.issue('client')), {
      serverId: id('server'),
    });
    const a = await undiciFetch(url, { dispatcher });
    expect(await a.json()).to.deep.equal({ peer: id('client') });
    const b = await fetch(url, { dispatcher } as RequestInit);
    expect(await b.json()).to.deep.equal({ peer: id('client') });
    const previous = getGlobalDispatcher();
    setGlobalDispatcher(dispatcher);
    try {
      const c = await fetch(url);
      expect(await c.json()).to.deep.equal({ peer: id('client') });
    } finally {
      setGlobalDispatcher(previous);
    }
    const wrong = new SvidDispatcher(await sourceFor(await pki.issue('client')), { serverId: id('nobody') });
    await undiciFetch(url, { dispatcher: wrong }).then(
      () => expect.fail('fetch talked to the wrong server'),
      (err: Error & { cause?: Error }) =>
        expect(String(err.cause?.message)).to.contain('not the expected server'),
    );
    await dispatcher.close();
    await wrong.close();
  });

  it('serves plain TLS and HTTP/2 with the same rules', async () => {
    const serverSource = sources[0] as SvidSource;
    const clientSvid = await pki.issue('client');
    const tlsServer = createTlsServer(serverSource, { authorize: [id('client')] }, (socket, peer) =>
      socket.end(`hello ${peer}\n`),
    );
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
    const connect = (svid: typeof clientSvid) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({
          port: port(tlsServer),
          host: '127.0.0.1',
          cert: svid.certChainPem,
          key: svid.keyPem,
          ca: svid.bundlePem,
          checkServerIdentity: () => undefined,
        });
        let data = '';
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('end', () => resolve(data));
        s.on('close', () => resolve(data));
        s.on('error', reject);
      });
    expect(await connect(clientSvid)).to.equal(`hello ${id('client')}\n`);
    expect(await connect(await pki.issue('intruder'))).to.equal('');
    tlsServer.close();

    const h2 = createHttp2Server(serverSource, { authorize: [id('client')] }, (req, res) =>
      res.end(req.spiffeId ?? ''),
    );
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    const session = http2.connect(`https://127.0.0.1:${port(h2)}`, {
      cert: clientSvid.certChainPem,
      key: clientSvid.keyPem,
      ca: clientSvid.bundlePem,
      checkServerIdentity: () => undefined,
    });
    const req = session.request({ ':path': '/' });
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    await once(req, 'end');
    expect(body).to.equal(id('client'));
    session.close();
    h2.close();
  });

  it('says clearly when the SVID directory is missing or invalid', async () => {
    await SvidSource.open('/nonexistent/svid').then(
      () => expect.fail('opened'),
      (err: Error) => {
        expect(err).to.be.instanceOf(SvidError);
        expect(err.message).to.contain('/nonexistent/svid is missing tls.crt, tls.key, ca.crt');
      },
    );
    const svid = await pki.issue('a');
    const other = await pki.issue('b');
    const v = await SecretVolume.create({ ...filesOf(svid), 'tls.key': other.keyPem });
    volumes.push(v);
    await SvidSource.open(v.dir).then(
      () => expect.fail('opened a mismatched set'),
      (err: Error) => expect(err.message).to.equal('the private key does not match the certificate'),
    );
  });
});
