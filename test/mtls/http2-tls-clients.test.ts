// The HTTP/2 and raw TLS clients through rotations of both sides under load: no failed request, the new
// client SVID used after a rotation, old HTTP/2 sessions drained; and a server with the wrong SPIFFE ID
// refused.
import { expect } from 'chai';
import { once } from 'node:events';
import type http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import {
  connectHttp2,
  type SvidHttp2Client,
  connectTls,
  createHttp2Server,
  createTlsServer,
  SvidSource,
} from '@svid-operator/mtls';
import { filesOf, id, makePki, rotateAlternately, SecretVolume, type Pki } from './fixtures.ts';

function get(client: SvidHttp2Client, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':path': path });
    let status = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
    req.setTimeout(10_000, () => req.close());
  });
}

function tlsEcho(source: SvidSource, port: number, serverId: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls(source, { host: '127.0.0.1', port, serverId }, () => socket.end('ping'));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('HTTP/2 and TLS clients: rotation under load', function () {
  this.timeout(120_000);
  let pki: Pki;
  let serverVol: SecretVolume;
  let clientVol: SecretVolume;
  let serverSource: SvidSource;
  let clientSource: SvidSource;
  let h2: http2.Http2SecureServer;
  let tlsServer: tls.Server;
  let h2Port: number;
  let tlsPort: number;

  before(async () => {
    pki = await makePki();
    serverVol = await SecretVolume.create(filesOf(await pki.issue('server')));
    clientVol = await SecretVolume.create(filesOf(await pki.issue('client')));
    serverSource = await SvidSource.open(serverVol.dir, { logger: null });
    clientSource = await SvidSource.open(clientVol.dir, { logger: null });
    // Each answer names the client certificate's serial, so the test sees which SVID the client used.
    h2 = createHttp2Server(serverSource, { authorize: [id('client')] }, (req, res) => {
      const socket = req.stream.session?.socket as tls.TLSSocket;
      res.end(socket.getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '');
    });
    tlsServer = createTlsServer(serverSource, { authorize: [id('client')] }, (socket) => {
      const serial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '';
      socket.on('data', () => undefined);
      socket.on('end', () => socket.end(serial));
    });
    h2.listen(0, '127.0.0.1');
    tlsServer.listen(0, '127.0.0.1');
    await Promise.all([once(h2, 'listening'), once(tlsServer, 'listening')]);
    h2Port = (h2.address() as AddressInfo).port;
    tlsPort = (tlsServer.address() as AddressInfo).port;
  });

  after(async () => {
    h2.close();
    tlsServer.close();
    serverSource.close();
    clientSource.close();
    await serverVol.remove();
    await clientVol.remove();
  });

  it('20 rotations (both sides, alternating) under load: 0 failed requests or connections, new client SVID after each', async () => {
    const client = connectHttp2(clientSource, `https://127.0.0.1:${h2Port}`, { serverId: id('server') });
    let stop = false;
    let h2Ok = 0;
    let tlsOk = 0;
    const failures: string[] = [];
    const h2Loop = async () => {
      while (!stop) {
        try {
          const r = await get(client);
          if (r.status === 200) h2Ok++;
          else failures.push(`HTTP/2 status ${r.status}`);
        } catch (err) {
          failures.push(`HTTP/2: ${(err as Error).message}`);
        }
      }
    };
    const tlsLoop = async () => {
      while (!stop) {
        try {
          await tlsEcho(clientSource, tlsPort, id('server'));
          tlsOk++;
        } catch (err) {
          failures.push(`TLS: ${(err as Error).message}`);
        }
      }
    };
    const loops = [h2Loop(), h2Loop(), h2Loop(), tlsLoop(), tlsLoop()];
    const sessions = new Set<http2.ClientHttp2Session>();
    try {
      for (let i = 0; i < 20; i++) {
        const { rotateClient, next } = await rotateAlternately(pki, i, {
          client: { source: clientSource, volume: clientVol },
          server: { source: serverSource, volume: serverVol },
        });
        if (rotateClient) {
          // The next request and connection present the new client SVID.
          expect((await get(client)).body).to.equal(next.serialNumber.toLowerCase());
          expect(await tlsEcho(clientSource, tlsPort, id('server'))).to.equal(
            next.serialNumber.toLowerCase(),
          );
          sessions.add(client.session());
        }
      }
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    expect(failures).to.deep.equal([]);
    expect(h2Ok).to.be.greaterThan(20);
    expect(tlsOk).to.be.greaterThan(20);
    // One session per client SVID: every earlier one was drained and closed.
    expect(sessions.size).to.equal(10);
    const current = client.session();
    for (const s of sessions)
      if (s !== current) expect(s.closed || s.destroyed, 'old session closed').to.equal(true);
    await client.close();
    expect(current.closed).to.equal(true);
  });

  it('refuses a server with another SPIFFE ID, over HTTP/2 and TLS', async () => {
    const client = connectHttp2(clientSource, `https://127.0.0.1:${h2Port}`, { serverId: id('payments') });
    const err = await get(client).catch((e: Error) => e);
    expect((err as Error).message).to.match(
      /the server is spiffe:\/\/.*\/sa\/server, which is not the expected server/,
    );
    await client.close();
    const tlsErr = await tlsEcho(clientSource, tlsPort, id('payments')).catch((e: Error) => e);
    expect((tlsErr as Error).message).to.match(
      /the server is spiffe:\/\/.*\/sa\/server, which is not the expected server/,
    );
    expect(() => connectHttp2(clientSource, `https://127.0.0.1:${h2Port}`, {})).to.throw(
      /say which server to trust/,
    );
  });
});
