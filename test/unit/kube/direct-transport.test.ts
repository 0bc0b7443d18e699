import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { KubeClient } from '../../../src/kube/client.ts';
import { directTransport } from '../../../src/kube/direct-transport.ts';
import { createSelfSignedCa, issueSvid, loadCa } from '../../../src/pki/index.ts';

// Against a local HTTPS server that asks for a client certificate and records which one it got.
describe('directTransport (client certificates from files, rotated in place)', function () {
  this.timeout(30_000);
  let dir: string;
  let server: https.Server;
  const presented: string[] = [];
  let a: { certPem: string; keyPem: string };
  let b: { certPem: string; keyPem: string };
  const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'direct-transport-'));
    [a, b] = await Promise.all([
      createSelfSignedCa({ trustDomain: 'a.example' }),
      createSelfSignedCa({ trustDomain: 'b.example' }),
    ]);
    const serving = await createSelfSignedCa({ trustDomain: 'server.example' });
    server = https.createServer(
      { cert: serving.certPem, key: serving.keyPem, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        presented.push((req.socket as TLSSocket).getPeerCertificate().fingerprint256);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('presents a rotated certificate after the re-read interval, and never a mismatched pair', async () => {
    const cert = path.join(dir, 'client.crt');
    const key = path.join(dir, 'client.key');
    await writeFile(cert, a.certPem);
    await writeFile(key, a.keyPem);
    let now = 0;
    const client = new KubeClient(
      await directTransport(
        {
          server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
          cert: { file: cert },
          key: { file: key },
          insecureSkipTlsVerify: true,
        },
        { clock: () => now, rereadMs: 60_000 },
      ),
    );
    try {
      await client.get('/api');
      // Half-way through a rotation: the new certificate next to the old key. Not used.
      await writeFile(cert, b.certPem);
      now += 60_000;
      await client.get('/api');
      await writeFile(key, b.keyPem);
      now += 30_000;
      await client.get('/api'); // not yet re-read
      now += 30_000;
      await client.get('/api');
      expect(presented).to.deep.equal([
        fingerprint(a.certPem),
        fingerprint(a.certPem),
        fingerprint(a.certPem),
        fingerprint(b.certPem),
      ]);
    } finally {
      await client.close();
    }
  });

  it('presents the client certificate on every pooled connection (one TLS context shared by all)', async () => {
    const port = (server.address() as AddressInfo).port;
    const client = new KubeClient(
      await directTransport({
        server: `https://127.0.0.1:${port}`,
        cert: { data: Buffer.from(a.certPem) },
        key: { data: Buffer.from(a.keyPem) },
        insecureSkipTlsVerify: true,
      }),
    );
    const sockets = new Set<unknown>();
    const count = (socket: unknown) => sockets.add(socket);
    server.on('secureConnection', count);
    presented.length = 0;
    try {
      await Promise.all(Array.from({ length: 8 }, () => client.get('/api')));
      expect(sockets.size).to.be.greaterThan(1);
      expect(presented).to.deep.equal(Array.from({ length: 8 }, () => fingerprint(a.certPem)));
    } finally {
      server.off('secureConnection', count);
      await client.close();
    }
  });

  it('carries requests on at most `connections` connections, and watches on their own', async () => {
    // Watches stay open for the whole test; requests take 30 ms each. With one bounded pool of 3, the five
    // watches would hold every connection and no request would ever be answered.
    const serving = await createSelfSignedCa({ trustDomain: 'pool.example' });
    const socketsOf = { watch: new Set<unknown>(), request: new Set<unknown>() };
    let inFlight = 0;
    let most = 0;
    let watchesOpen = 0;
    const pool = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      if (req.url?.includes('watch=true')) {
        socketsOf.watch.add(req.socket);
        watchesOpen++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('\n');
        return; // held open until the client aborts
      }
      socketsOf.request.add(req.socket);
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }, 30);
    });
    pool.listen(0, '127.0.0.1');
    await once(pool, 'listening');
    const client = new KubeClient(
      await directTransport(
        { server: `https://127.0.0.1:${(pool.address() as AddressInfo).port}`, insecureSkipTlsVerify: true },
        { connections: 3 },
      ),
    );
    const stop = new AbortController();
    try {
      const opened: Promise<void>[] = [];
      const watches = Array.from({ length: 5 }, (_, i) => {
        let open!: () => void;
        opened.push(new Promise<void>((r) => (open = r)));
        return client.watch({
          path: `/api/v1/namespaces/n${i}/secrets`,
          query: {},
          signal: stop.signal,
          deadConnectionMs: 60_000,
          onOpen: () => open(),
          onEvent: () => undefined,
        });
      });
      await Promise.all(opened);
      expect(watchesOpen).to.equal(5);
      await Promise.all(Array.from({ length: 12 }, (_, i) => client.get(`/api/v1/namespaces/r${i}`)));
      expect(most, 'requests at the server at once').to.equal(3);
      expect(socketsOf.request.size, 'connections that carried requests').to.equal(3);
      expect(socketsOf.watch.size, 'connections that carried watches').to.equal(5);
      expect(
        [...socketsOf.watch].some((s) => socketsOf.request.has(s)),
        'a shared connection',
      ).to.equal(false);
      stop.abort();
      await Promise.all(watches);
    } finally {
      stop.abort();
      await client.close();
      pool.closeAllConnections();
      pool.close();
    }
  });

  it('refuses a connection bound that is not a whole number from 1', async () => {
    for (const connections of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      let err: unknown;
      try {
        await directTransport(
          { server: 'https://127.0.0.1:1', insecureSkipTlsVerify: true },
          { connections },
        );
      } catch (e) {
        err = e;
      }
      expect(err, String(connections)).to.be.instanceOf(RangeError);
      expect((err as Error).message).to.equal(`connections must be a whole number >= 1, not ${connections}`);
    }
  });

  // The shared context must still carry the kubeconfig's CA, and verification stay on unless skipped: a
  // server whose certificate (DNS name localhost, no IP) a CA of the test issued.
  describe('verifies the API server as the kubeconfig says', () => {
    let issuer: { certPem: string; keyPem: string };
    let other: { certPem: string; keyPem: string };
    let verified: https.Server;
    before(async () => {
      [issuer, other] = await Promise.all([
        createSelfSignedCa({ trustDomain: 'issuer.example' }),
        createSelfSignedCa({ trustDomain: 'other.example' }),
      ]);
      const svid = await issueSvid(await loadCa(issuer), {
        spiffeId: 'spiffe://issuer.example/apiserver',
        dnsNames: ['localhost'],
        durationSeconds: 3600,
      });
      verified = https.createServer({ cert: svid.certChainPem, key: svid.keyPem }, (_req, res) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}'),
      );
      verified.listen(0, '127.0.0.1');
      await once(verified, 'listening');
    });
    after(() => {
      verified.closeAllConnections();
      verified.close();
    });

    const cases: [string, () => { ca?: string; servername?: string; skip?: boolean }, string | undefined][] =
      [
        [
          'its CA and the name it serves: accepted',
          () => ({ ca: issuer.certPem, servername: 'localhost' }),
          undefined,
        ],
        [
          'its CA, the address it lacks: refused by name',
          () => ({ ca: issuer.certPem }),
          'ERR_TLS_CERT_ALTNAME_INVALID',
        ],
        [
          'another CA: refused',
          () => ({ ca: other.certPem, servername: 'localhost' }),
          'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        ],
        [
          'no CA (the system roots): refused',
          () => ({ servername: 'localhost' }),
          'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        ],
        ['another CA, verification skipped: accepted', () => ({ ca: other.certPem, skip: true }), undefined],
      ];
    for (const [name, setup, code] of cases) {
      it(name, async () => {
        const { ca, servername, skip } = setup();
        const client = new KubeClient(
          await directTransport({
            server: `https://127.0.0.1:${(verified.address() as AddressInfo).port}`,
            ...(ca && { ca: { data: Buffer.from(ca) } }),
            ...(servername && { servername }),
            insecureSkipTlsVerify: skip ?? false,
          }),
        );
        try {
          const err = await client.get('/api').then(
            () => undefined,
            (e: unknown) => e as NodeJS.ErrnoException,
          );
          expect(err?.code).to.equal(code);
        } finally {
          await client.close();
        }
      });
    }
  });

  it('refuses a certificate and key that do not belong together at load, saying so', async () => {
    const err = await directTransport({
      server: 'https://127.0.0.1:1',
      cert: { data: Buffer.from(a.certPem) },
      key: { data: Buffer.from(b.keyPem) },
      insecureSkipTlsVerify: false,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).to.match(
      /the client certificate and key in the kubeconfig do not belong together .*: give the key of that certificate/,
    );
    expect((err as Error).message).not.to.contain('PRIVATE KEY');
  });
});
