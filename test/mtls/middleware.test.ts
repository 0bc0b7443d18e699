import { expect } from 'chai';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import {
  authorizeId,
  authorizeIf,
  expressSpiffeAuth,
  fastifySpiffeAuth,
  serverTlsOptions,
  SvidSource,
} from '@svid-operator/mtls';
import { filesOf, id, makePki, SecretVolume, type Pki } from './fixtures.ts';

type Svid = Awaited<ReturnType<Pki['issue']>>;

function call(
  port: number,
  svid: Svid | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        `https://127.0.0.1:${port}/`,
        {
          headers,
          ca: svid?.bundlePem ?? '',
          cert: svid?.certChainPem,
          key: svid?.keyPem,
          rejectUnauthorized: false,
          agent: false,
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      )
      .on('error', reject);
  });
}

describe('mTLS library: Express and Fastify middleware', function () {
  this.timeout(30_000);
  let pki: Pki;
  let volume: SecretVolume;
  let source: SvidSource;
  let tlsOptions: https.ServerOptions;

  before(async () => {
    pki = await makePki();
    volume = await SecretVolume.create(filesOf(await pki.issue('server')));
    source = await SvidSource.open(volume.dir, { logger: null });
    // Certificates are requested but not required at the TLS layer, so the middleware's 401 can be seen.
    tlsOptions = { ...serverTlsOptions(source), requestCert: true, rejectUnauthorized: false };
  });
  after(async () => {
    source.close();
    await volume.remove();
  });

  it('Express: 401 without a client SVID, 403 for a disallowed one, the ID on req for an allowed one', async () => {
    const app = express();
    app.use(expressSpiffeAuth({ source, authorize: [id('client')] }));
    app.get('/', (req, res) => res.json({ peer: (req as unknown as { spiffeId: string }).spiffeId }));
    const server = https.createServer(tlsOptions, app).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const none = await call(port, undefined);
      expect(none.status).to.equal(401);
      expect(JSON.parse(none.body).error).to.contain('a client certificate (an X.509-SVID) is required');
      const intruder = await call(port, await pki.issue('intruder'));
      expect(intruder.status).to.equal(403);
      expect(JSON.parse(intruder.body).error).to.equal(
        `${id('intruder')} is not allowed to call this service`,
      );
      const stranger = await call(port, await pki.issue('client', { ca: pki.otherCa }));
      expect(stranger.status).to.equal(401);
      const ok = await call(port, await pki.issue('client'));
      expect(ok.status).to.equal(200);
      expect(JSON.parse(ok.body)).to.deep.equal({ peer: id('client') });
    } finally {
      server.close();
    }
  });

  it('Fastify: the same answers from an onRequest hook', async () => {
    const app = Fastify({ https: tlsOptions });
    app.addHook(
      'onRequest',
      fastifySpiffeAuth({
        source,
        authorize: authorizeIf('service account client', (peer) => peer.segments.at(-1) === 'client'),
      }),
    );
    app.get('/', async (req) => ({ peer: (req as unknown as { spiffeId: string }).spiffeId }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    try {
      expect((await call(port, undefined)).status).to.equal(401);
      expect((await call(port, await pki.issue('intruder'))).status).to.equal(403);
      const ok = await call(port, await pki.issue('client'));
      expect(ok.status).to.equal(200);
      expect(JSON.parse(ok.body)).to.deep.equal({ peer: id('client') });
    } finally {
      await app.close();
    }
  });

  it("takes a terminator's XFCC header only when enabled and only from a trusted proxy", async () => {
    const xfcc = `By=${id('proxy')};Hash=abc;URI=${id('upstream')},By=${id('proxy')};Hash=def;Subject="O=x, CN=y";URI=${id('client')}`;
    const app = express();
    app.use(
      expressSpiffeAuth({
        source,
        authorize: authorizeId(id('client')),
        trustedProxy: { trustedPeers: [id('proxy')], header: 'xfcc' },
      }),
    );
    app.get('/', (req, res) => res.json({ peer: (req as unknown as { spiffeId: string }).spiffeId }));
    const plain = express();
    plain.use(expressSpiffeAuth({ source, authorize: [id('client')] }));
    plain.get('/', (req, res) => res.json({ peer: (req as unknown as { spiffeId: string }).spiffeId }));
    const server = https.createServer(tlsOptions, app).listen(0, '127.0.0.1');
    const off = https.createServer(tlsOptions, plain).listen(0, '127.0.0.1');
    await Promise.all([once(server, 'listening'), once(off, 'listening')]);
    const port = (server.address() as AddressInfo).port;
    try {
      const proxy = await pki.issue('proxy');
      const viaProxy = await call(port, proxy, { 'x-forwarded-client-cert': xfcc });
      expect(JSON.parse(viaProxy.body)).to.deep.equal({ peer: id('client') });
      // From the trusted proxy, a malformed header or an element another proxy added is a 401, not a guess.
      const malformed = await call(port, proxy, {
        'x-forwarded-client-cert': `URI=${id('admin')};x=",${xfcc}`,
      });
      expect(malformed.status).to.equal(401);
      expect(JSON.parse(malformed.body).error).to.equal(
        'malformed x-forwarded-client-cert header: unknown key "x"',
      );
      const otherBy = await call(port, proxy, {
        'x-forwarded-client-cert': `By=${id('evil')};URI=${id('client')}`,
      });
      expect(otherBy.status).to.equal(401);
      expect(JSON.parse(otherBy.body).error).to.contain(
        `added by ${id('evil')}, not by the proxy ${id('proxy')}`,
      );
      const notAnId = await call(port, proxy, {
        'x-forwarded-client-cert': `By=${id('proxy')};URI=https://x/y`,
      });
      expect(notAnId.status).to.equal(401);
      // A client that forges the header is judged by its own certificate.
      const forged = await call(port, await pki.issue('intruder'), {
        'x-forwarded-client-cert': `URI=${id('client')}`,
      });
      expect(forged.status).to.equal(403);
      // The proxy without a header vouches for nobody.
      expect((await call(port, proxy)).status).to.equal(401);
      // Off by default: the header means nothing.
      const offPort = (off.address() as AddressInfo).port;
      expect((await call(offPort, proxy, { 'x-forwarded-client-cert': xfcc })).status).to.equal(403);
    } finally {
      server.close();
      off.close();
    }
  });
});
