// gRPC credentials on SVID sources: unary and streaming calls through rotations of both sides under load
// with no failed call; the server ID check on the client; PERMISSION_DENIED / UNAUTHENTICATED from the
// server; bad updates keep the old credentials serving.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import {
  grpcChannelCredentials,
  grpcServerCredentials,
  spiffeAuthInterceptor,
  SvidCertificateProvider,
} from '@svid-operator/mtls/grpc';
import {
  authorizeAny,
  authorizeId,
  createHttpsServer,
  SvidSource,
  toPem,
  type MtlsEvent,
  type Svid,
  type X509Source,
} from '@svid-operator/mtls';
import { credentialPem } from '../../packages/mtls/src/server.ts';
import {
  newEchoClient,
  startServer,
  unary,
  type EchoClientType,
  type Pong,
} from '../../examples/grpc-echo.ts';
import { createSelfSignedCa, issueSvid, loadCa, type IssuedSvid } from '../../src/pki/index.ts';
import { buildCert } from '../support/cert-builder.ts';
import { FixedSource } from '../support/fixed-source.ts';
import { filesOf, id, makePki, rotateAlternately, SecretVolume, TD, type Pki } from './fixtures.ts';

/** The serial of the certificate a server presents to a new TLS connection. */
function presentedSerial(address: string, client: X509Source): Promise<string> {
  const [host, port] = address.split(':');
  const svid = client.current();
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host,
        port: Number(port),
        ...credentialPem(svid),
        ca: bundlePem(client),
        ALPNProtocols: ['h2'],
        checkServerIdentity: () => undefined,
      },
      () => {
        resolve(socket.getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '');
        socket.destroy();
      },
    );
    socket.on('error', reject);
  });
}

const bundlePem = (source: X509Source) =>
  (source.bundleFor(source.current().trustDomain)?.roots ?? [])
    .map((c) => toPem('CERTIFICATE', c.raw))
    .join('');

describe('gRPC credentials', function () {
  this.timeout(120_000);
  let pki: Pki;
  let serverVol: SecretVolume;
  let clientVol: SecretVolume;
  let serverSource: SvidSource;
  let clientSource: SvidSource;
  let server: grpc.Server;
  let address: string;
  const events: MtlsEvent[] = [];

  before(async () => {
    pki = await makePki();
    serverVol = await SecretVolume.create(filesOf(await pki.issue('server')));
    clientVol = await SecretVolume.create(filesOf(await pki.issue('client')));
    serverSource = await SvidSource.open(serverVol.dir, { logger: null });
    clientSource = await SvidSource.open(clientVol.dir, { logger: null });
    ({ server, address } = await startServer(
      grpcServerCredentials(serverSource, {
        authorize: authorizeId(id('client')),
        observe: (e) => events.push(e),
      }),
      serverSource,
    ));
  });

  after(async () => {
    server.forceShutdown();
    serverSource.close();
    clientSource.close();
    await serverVol.remove();
    await clientVol.remove();
  });

  it('unary and streaming calls through 20 alternating rotations of both sides under load: 0 failed calls', async () => {
    const creds = grpcChannelCredentials(clientSource, { serverId: id('server') });
    const client = newEchoClient(address, creds);
    let stop = false;
    let unaryOk = 0;
    let streamOk = 0;
    const failures: string[] = [];
    const unaryLoop = async () => {
      for (let n = 0; !stop; n++) {
        try {
          const r = await unary(client, n);
          if (r.n === n && r.caller === id('client')) unaryOk++;
          else failures.push(`unary answered ${JSON.stringify(r)}`);
        } catch (err) {
          failures.push(`unary: ${(err as Error).message}`);
        }
      }
    };
    // One long-lived bidirectional stream across every rotation, plus short ones opened all the time.
    const streamLoop = async (perStream: number) => {
      while (!stop) {
        try {
          const call = client.stream();
          const got: Pong[] = [];
          call.on('data', (p: Pong) => got.push(p));
          const ended = once(call, 'end');
          for (let n = 0; n < perStream && !stop; n++) {
            call.write({ n });
            await new Promise((r) => setImmediate(r));
          }
          call.end();
          await ended;
          if (got.every((p, i) => p.n === i && p.caller === id('client'))) streamOk += got.length;
          else failures.push(`stream answered ${JSON.stringify(got.slice(0, 3))}`);
        } catch (err) {
          failures.push(`stream: ${(err as Error).message}`);
        }
      }
    };
    const loops = [unaryLoop(), unaryLoop(), streamLoop(20), streamLoop(1_000_000)];
    try {
      for (let i = 0; i < 20; i++) {
        const { rotateClient, next } = await rotateAlternately(pki, i, {
          client: { source: clientSource, volume: clientVol },
          server: { source: serverSource, volume: serverVol },
        });
        if (rotateClient) {
          // A new channel on the same credentials connects with the new client SVID.
          const fresh = newEchoClient(address, creds, { 'grpc.use_local_subchannel_pool': 1 });
          expect((await unary(fresh, -1)).callerSerial).to.equal(next.serialNumber.toLowerCase());
          fresh.close();
        } else {
          // New connections get the new server SVID, with no restart.
          await new Promise((r) => setImmediate(r));
          expect(await presentedSerial(address, clientSource)).to.equal(next.serialNumber.toLowerCase());
        }
      }
    } finally {
      stop = true;
      await Promise.all(loops);
      client.close();
    }
    expect(failures).to.deep.equal([]);
    expect(unaryOk).to.be.greaterThan(40);
    expect(streamOk).to.be.greaterThan(40);
  });

  it('the client refuses a server with another SPIFFE ID', async () => {
    const client = newEchoClient(address, grpcChannelCredentials(clientSource, { serverId: id('payments') }));
    const err = (await unary(client, 1).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    client.close();
    expect(err.code).to.equal(grpc.status.UNAVAILABLE);
    expect(err.details).to.match(/the server is spiffe:\/\/.*\/sa\/server, which is not the expected server/);
    expect(() => grpcChannelCredentials(clientSource, {})).to.throw(/say which server to trust/);
  });

  it('the server answers PERMISSION_DENIED to a client it does not allow, and needs an explicit rule', async () => {
    const otherVol = await SecretVolume.create(filesOf(await pki.issue('intruder')));
    const other = await SvidSource.open(otherVol.dir, { logger: null });
    try {
      const client = newEchoClient(address, grpcChannelCredentials(other, { serverId: id('server') }));
      const err = (await unary(client, 1).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      const stream = client.stream();
      const [streamErr] = (await once(stream, 'error')) as [grpc.ServiceError];
      client.close();
      expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
      expect(err.details).to.equal(`${id('intruder')} is not allowed to call /svid.test.Echo/Unary`);
      expect(streamErr.code).to.equal(grpc.status.PERMISSION_DENIED);
    } finally {
      other.close();
      await otherVol.remove();
    }
    expect(() => grpcServerCredentials(serverSource, {} as never)).to.throw(
      /grpcServerCredentials needs an authorization rule: .*authorizeAny\(\)/,
    );
  });

  it('verifies a caller only against the roots of the trust domain it claims (federation per trust domain)', async () => {
    const other = await loadCa(await createSelfSignedCa({ trustDomain: 'other.example' }));
    const vol = await SecretVolume.create(filesOf(await pki.issue('server')));
    const source = await SvidSource.open(vol.dir, {
      logger: null,
      federatedBundles: { 'other.example': other.trustBundlePem },
    });
    const seen: MtlsEvent[] = [];
    const started = await startServer(
      grpcServerCredentials(source, { authorize: authorizeAny(), observe: (e) => seen.push(e) }),
      source,
    );
    // A plain grpc-js client, so that only the server's checks are under test.
    const callAs = async (svid: IssuedSvid) => {
      const creds = grpc.credentials.createSsl(
        Buffer.from(bundlePem(source)),
        Buffer.from(svid.keyPem),
        Buffer.from(svid.certChainPem),
        { checkServerIdentity: () => undefined },
      );
      const client = newEchoClient(started.address, creds, { 'grpc.use_local_subchannel_pool': 1 });
      try {
        return await unary(client, 1).catch((e: grpc.ServiceError) => e);
      } finally {
        client.close();
      }
    };
    try {
      // other.example's root signs a leaf that claims an ID of our trust domain: refused.
      const impostor = await issueSvid(other, { spiffeId: id('admin'), durationSeconds: 600 });
      const refused = (await callAs(impostor)) as grpc.ServiceError;
      expect(refused.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(refused.details).to.equal(
        `the certificate of ${id('admin')} does not chain to a root of trust domain ${TD}: present an X.509-SVID this service trusts`,
      );
      expect(seen.at(-1)).to.deep.include({ type: 'handshake-failed', reason: 'wrong-trust-domain' });
      // The same root vouches for its own trust domain, and the handler sees the verified caller.
      const partner = 'spiffe://other.example/ns/x/sa/y';
      const federated = await issueSvid(other, { spiffeId: partner, durationSeconds: 600 });
      expect(((await callAs(federated)) as Pong).caller).to.equal(partner);
      expect(((await callAs(await pki.issue('client'))) as Pong).caller).to.equal(id('client'));
    } finally {
      started.server.forceShutdown();
      source.close();
      await vol.remove();
    }
  });

  it('a server SVID under an intermediate CA: the client verifies the chain it sent', async () => {
    // Client SVIDs under an intermediate: see the next test (same trust domain) and secure-defaults.test.ts
    // (federated; a server on Node.js 24.21 loses the client's first intermediate, nodejs/node#65579).
    const root = await buildCert({ commonName: 'root' });
    const int = await buildCert({ commonName: 'intermediate', issuer: root });
    const leaf = async (sa: string, issuer: typeof root, chain: string) => {
      const c = await buildCert({ commonName: sa, issuer, ca: false, keyUsage: 'sign', uris: [id(sa)] });
      return { certChainPem: c.certPem + chain, keyPem: c.keyPem, bundlePem: root.certPem };
    };
    const serverSrc = new FixedSource(await leaf('server', int, int.certPem));
    const clientSrc = new FixedSource(await leaf('client', root, ''));
    const started = await startServer(
      grpcServerCredentials(serverSrc, { authorize: authorizeId(id('client')) }),
      serverSrc,
    );
    const client = newEchoClient(
      started.address,
      grpcChannelCredentials(clientSrc, { serverId: id('server') }),
    );
    try {
      expect((await unary(client, 3)).caller).to.equal(id('client'));
    } finally {
      client.close();
      started.server.forceShutdown();
    }
  });

  it('a client SVID under the same intermediate CA as the server: the server verifies it (gRPC and HTTPS)', async () => {
    // Node exposes none of the intermediates a client sent on the server side; a client of our trust domain
    // is issued under the same CA chain as the server's own SVID, whose intermediates stand in for them.
    const root = await buildCert({ commonName: 'root' });
    const int = await buildCert({ commonName: 'intermediate', issuer: root });
    const leaf = async (sa: string) => {
      const c = await buildCert({ commonName: sa, issuer: int, ca: false, keyUsage: 'sign', uris: [id(sa)] });
      return { certChainPem: c.certPem + int.certPem, keyPem: c.keyPem, bundlePem: root.certPem };
    };
    const serverSrc = new FixedSource(await leaf('server'));
    const clientSvid = await leaf('client');
    const clientSrc = new FixedSource(clientSvid);
    const started = await startServer(
      grpcServerCredentials(serverSrc, { authorize: authorizeId(id('client')) }),
      serverSrc,
    );
    const client = newEchoClient(
      started.address,
      grpcChannelCredentials(clientSrc, { serverId: id('server') }),
    );
    const web = createHttpsServer(serverSrc, { authorize: authorizeId(id('client')) }, (req, res) =>
      res.end(req.spiffeId),
    );
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    try {
      expect((await unary(client, 3)).caller).to.equal(id('client'));
      const body = await new Promise<string>((resolve, reject) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port: (web.address() as AddressInfo).port,
            path: '/',
            cert: clientSvid.certChainPem,
            key: clientSvid.keyPem,
            ca: root.certPem,
            checkServerIdentity: () => undefined,
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve(`${res.statusCode} ${text}`));
          },
        );
        req.on('error', reject);
      });
      expect(body).to.equal(`200 ${id('client')}`);
    } finally {
      client.close();
      started.server.forceShutdown();
      web.close();
    }
  });

  it('the interceptor answers UNAUTHENTICATED when a call comes without a client SVID', async () => {
    // Only reachable on credentials that do not require a client certificate; grpcServerCredentials does.
    const provider = new SvidCertificateProvider(serverSource);
    const lax = grpc.experimental.createServerCredentialsWithInterceptors(
      grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false),
      [spiffeAuthInterceptor(serverSource, authorizeAny())],
    );
    const { server: laxServer, address: laxAddress } = await startServer(lax, serverSource);
    try {
      const anonymous = grpc.credentials.createSsl(Buffer.from(bundlePem(serverSource)), null, null, {
        checkServerIdentity: () => undefined,
      });
      const client: EchoClientType = newEchoClient(laxAddress, anonymous);
      const err = (await unary(client, 1).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      client.close();
      expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(err.details).to.match(
        /a client certificate \(an X.509-SVID\) is required: present an X.509-SVID/,
      );
    } finally {
      laxServer.forceShutdown();
      provider.close();
    }
  });

  it('bad updates (mismatched pair, truncated file, a pair that slips past the source) keep the old credentials serving', async () => {
    const client = newEchoClient(address, grpcChannelCredentials(clientSource, { serverId: id('server') }));
    const before = serverSource.current();
    const errors: string[] = [];
    const onError = (e: Error) => errors.push(e.message);
    serverSource.on('error', onError);
    events.length = 0;
    try {
      const a = await pki.issue('server');
      const b = await pki.issue('server');
      await serverVol.swap({ ...filesOf(a), 'tls.key': b.keyPem });
      await serverSource.reload();
      await serverVol.swap({ ...filesOf(a), 'tls.crt': filesOf(a)['tls.crt'].slice(0, 200) });
      await serverSource.reload();
      expect(errors.join('\n')).to.match(/does not match/);
      expect(errors.join('\n')).to.match(/truncated or corrupt|no PEM certificate/);
      // A mismatched pair handed to the provider directly (as a faulty source could) is refused there too.
      serverSource.emit('update', {
        ...before,
        privateKey: createPrivateKey(b.keyPem),
        serialNumber: 'bad',
      } as Svid);
      const failed = events.filter((e) => e.type === 'rotation-failed');
      expect(failed.at(-1)?.message).to.match(
        /gRPC credentials keep SVID .*: SVID bad was refused: the private key does not match/,
      );
      expect(serverSource.current().serialNumber).to.equal(before.serialNumber);
      for (let i = 0; i < 5; i++) {
        const fresh = newEchoClient(
          address,
          grpcChannelCredentials(clientSource, { serverId: id('server') }),
          {
            'grpc.use_local_subchannel_pool': 1,
          },
        );
        expect((await unary(fresh, i)).n).to.equal(i);
        fresh.close();
      }
      expect(await presentedSerial(address, clientSource)).to.equal(before.serialNumber);
      expect((await unary(client, 7)).n).to.equal(7);
    } finally {
      serverSource.off('error', onError);
      client.close();
    }
  });
});

/** The expiry of an SVID's leaf as the server reports it (the certificate has whole seconds). */
const expiryOf = (s: IssuedSvid) => new Date(new X509Certificate(s.certChainPem).validTo).toISOString();

/** One gRPC call over a raw HTTP/2 session (no grpc-js client, so nothing reconnects or retries). */
async function rawUnary(
  session: http2.ClientHttp2Session,
  n: number,
): Promise<{ status: string; message: string; body: string } | { refused: number | string }> {
  let stream: http2.ClientHttp2Stream;
  try {
    stream = session.request({
      ':method': 'POST',
      ':path': '/svid.test.Echo/Unary',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
  } catch (err) {
    return { refused: (err as NodeJS.ErrnoException).code ?? 'throw' };
  }
  const payload = Buffer.from(JSON.stringify({ n }));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  stream.end(Buffer.concat([prefix, payload]));
  const headers: http2.IncomingHttpHeaders = {};
  stream.on('response', (h) => Object.assign(headers, h));
  stream.on('trailers', (h) => Object.assign(headers, h));
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d));
  await new Promise<void>((resolve) => {
    stream.on('close', resolve);
    stream.on('error', () => undefined);
  });
  if (headers['grpc-status'] === undefined) return { refused: stream.rstCode ?? 'closed' };
  return {
    status: String(headers['grpc-status']),
    message: decodeURIComponent(String(headers['grpc-message'] ?? '')),
    body: Buffer.concat(chunks).subarray(5).toString(),
  };
}

describe('gRPC server connection age and expired client certificates', function () {
  this.timeout(120_000);
  const MIN = 60_000;
  let pki: Pki;
  let serverSrc: FixedSource;
  const cleanup: (() => void)[] = [];

  before(async () => {
    pki = await makePki();
    serverSrc = new FixedSource(await pki.issue('server'));
  });

  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  /** A server on `serverSrc` whose checks run at `clock()`. */
  async function serve(
    clock: () => Date,
    extra: { maxConnectionAgeMs?: number; maxConnectionAgeGraceMs?: number } = {},
  ) {
    const started = await startServer(
      grpcServerCredentials(serverSrc, { authorize: authorizeId(id('client')), now: clock, ...extra }),
      serverSrc,
    );
    cleanup.push(() => started.server.forceShutdown());
    return started.address;
  }

  it('refuses a maxConnectionAgeMs that is not a positive number of milliseconds, before following the source', () => {
    const listeners = serverSrc.listenerCount('update');
    expect(() =>
      grpcServerCredentials(serverSrc, { authorize: authorizeId(id('client')), maxConnectionAgeMs: 0 }),
    ).to.throw(TypeError, /^grpcServerCredentials: maxConnectionAgeMs must be a positive, finite number/);
    expect(() =>
      spiffeAuthInterceptor(serverSrc, authorizeAny(), { maxConnectionAgeMs: Number.NaN }),
    ).to.throw(TypeError, /^spiffeAuthInterceptor: maxConnectionAgeMs must be .* \(got NaN\)/);
    expect(() =>
      grpcServerCredentials(serverSrc, { authorize: authorizeAny(), maxConnectionAgeGraceMs: -1 }),
    ).to.throw(
      TypeError,
      /^grpcServerCredentials: maxConnectionAgeGraceMs must be a positive, finite number of milliseconds \(got -1\); leave it out for the default, the maximum connection age$/,
    );
    expect(() =>
      spiffeAuthInterceptor(serverSrc, authorizeAny(), {
        maxConnectionAgeGraceMs: '5' as unknown as number,
      }),
    ).to.throw(TypeError, /^spiffeAuthInterceptor: maxConnectionAgeGraceMs must be .* \(got string\)/);
    expect(serverSrc.listenerCount('update')).to.equal(listeners);
  });

  it('a long-lived channel through a client rotation and past the first SVID expiry: 0 failed calls, the new serial on the same channel', async () => {
    const first = await pki.issue('client', { durationSeconds: 3600 });
    const clientSrc = new FixedSource(first);
    const start = Date.now();
    let at = start;
    const address = await serve(() => new Date(at));
    const client = newEchoClient(address, grpcChannelCredentials(clientSrc, { serverId: id('server') }));
    cleanup.push(() => client.close());
    const firstSerial = first.serialNumber.toLowerCase();
    let second = '';
    const failures: string[] = [];
    const serialsByMinute: string[][] = [];
    // 80 minutes of the server's clock, a minute a step, two calls at a time; the client's SVID (1 h) is
    // rotated at its half-life, as SPIRE does, to one valid past the end. The default age is a quarter of the
    // server SVID's lifetime (1 h): 15 min.
    for (let minute = 0; minute <= 80; minute++) {
      at = start + minute * MIN;
      if (minute === 30) {
        const next = await pki.issue('client', { durationSeconds: 3 * 3600 });
        clientSrc.rotate(next);
        second = next.serialNumber.toLowerCase();
      }
      const calls = await Promise.allSettled([unary(client, minute), unary(client, -minute)]);
      const serials: string[] = [];
      for (const c of calls) {
        if (c.status === 'fulfilled') serials.push(c.value.callerSerial);
        else failures.push(`minute ${minute}: ${(c.reason as Error).message}`);
      }
      serialsByMinute.push(serials);
    }
    expect(failures).to.deep.equal([]);
    const seen = new Set(serialsByMinute.flat());
    expect([...seen].sort()).to.deep.equal([firstSerial, second].sort());
    // Past the first SVID's expiry (minute 60 and later) every call came with the new one.
    expect(new Set(serialsByMinute.slice(60).flat())).to.deep.equal(new Set([second]));
  });

  it('an expired client certificate is refused and its connection closed: the client reconnects with its current SVID', async () => {
    const first = await pki.issue('client', { durationSeconds: 600 });
    const clientSrc = new FixedSource(first);
    const start = Date.now();
    let at = start;
    // An age bound far past the test, so that only the expiry can end the connection.
    const address = await serve(() => new Date(at), { maxConnectionAgeMs: 24 * 3600_000 });
    const client = newEchoClient(address, grpcChannelCredentials(clientSrc, { serverId: id('server') }));
    cleanup.push(() => client.close());
    expect((await unary(client, 1)).callerSerial).to.equal(first.serialNumber.toLowerCase());
    const next = await pki.issue('client', { durationSeconds: 3600 });
    clientSrc.rotate(next);
    expect((await unary(client, 2)).callerSerial, 'still the first connection').to.equal(
      first.serialNumber.toLowerCase(),
    );
    at = start + 11 * MIN;
    const refused = (await unary(client, 3).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(refused.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(refused.details).to.equal(
      `the certificate of ${id('client')} expired at ${expiryOf(first)}: present an X.509-SVID this service trusts`,
    );
    // The refusal closed the connection; the next call makes a new one with the current SVID.
    for (let n = 4; n < 8; n++) {
      expect((await unary(client, n)).callerSerial).to.equal(next.serialNumber.toLowerCase());
    }
  });

  it('an idle connection is retired by its timer: the next call comes on a new connection with the rotated SVID', async () => {
    const first = await pki.issue('client');
    const clientSrc = new FixedSource(first);
    const address = await serve(() => new Date(), { maxConnectionAgeMs: 300 });
    const client = newEchoClient(address, grpcChannelCredentials(clientSrc, { serverId: id('server') }));
    cleanup.push(() => client.close());
    expect((await unary(client, 1)).callerSerial).to.equal(first.serialNumber.toLowerCase());
    const channel = client.getChannel();
    expect(channel.getConnectivityState(false)).to.equal(grpc.connectivityState.READY);
    const next = await pki.issue('client');
    clientSrc.rotate(next);
    // No call is made: only the server's timer can end the connection (GOAWAY), which takes the channel
    // out of READY.
    const left = await new Promise<Error | undefined>((resolve) =>
      channel.watchConnectivityState(grpc.connectivityState.READY, Date.now() + 30_000, resolve),
    );
    expect(left, 'the channel left READY').to.equal(undefined);
    expect((await unary(client, 2)).callerSerial).to.equal(next.serialNumber.toLowerCase());
  });

  it('a connection whose client root left the bundle is refused and closed (GOAWAY)', async () => {
    const ownSrc = new FixedSource(await pki.issue('server'));
    const started = await startServer(
      grpcServerCredentials(ownSrc, {
        authorize: authorizeId(id('client')),
        maxConnectionAgeMs: 24 * 3600_000,
      }),
      ownSrc,
    );
    cleanup.push(() => started.server.forceShutdown());
    const client = await pki.issue('client');
    const session = http2.connect(`https://${started.address}`, {
      cert: client.certChainPem,
      key: client.keyPem,
      ca: client.bundlePem,
      servername: 'server',
      checkServerIdentity: () => undefined,
    });
    cleanup.push(() => session.destroy());
    session.on('error', () => undefined);
    const goaway = once(session, 'goaway');
    expect(await rawUnary(session, 1)).to.deep.include({ status: '0' });
    // The server moves to another CA: its bundle no longer holds the root the client's SVID chains to.
    ownSrc.rotate(await pki.issue('server', { ca: pki.otherCa }));
    const refused = await rawUnary(session, 2);
    expect(refused).to.deep.include({ status: String(grpc.status.UNAUTHENTICATED), body: '' });
    expect((refused as { message: string }).message).to.match(
      new RegExp(
        `^the certificate of ${id('client')} does not chain to a root of trust domain ${TD}: .*Either that CA is a root that has left ${TD}'s trust bundle \\(a retired CA after a rotation: the peer needs an SVID from the current CA.*present an X.509-SVID this service trusts$`,
      ),
    );
    expect(((await goaway) as [number])[0]).to.equal(http2.constants.NGHTTP2_NO_ERROR);
  });

  it('a client that never reconnects (a raw HTTP/2 session) is refused after expiry, and so is one that never renews', async () => {
    const old = await pki.issue('client', { durationSeconds: 600 });
    const start = Date.now();
    let at = start;
    const address = await serve(() => new Date(at), { maxConnectionAgeMs: 24 * 3600_000 });
    const session = http2.connect(`https://${address}`, {
      cert: old.certChainPem,
      key: old.keyPem,
      ca: old.bundlePem,
      servername: 'server',
      checkServerIdentity: () => undefined,
    });
    cleanup.push(() => session.destroy());
    session.on('error', () => undefined);
    const goaway = once(session, 'goaway');
    const ok = await rawUnary(session, 1);
    expect(ok).to.deep.include({ status: '0' });
    expect(JSON.parse((ok as { body: string }).body)).to.deep.include({ n: 1, caller: id('client') });
    at = start + 11 * MIN;
    const expired = `the certificate of ${id('client')} expired at ${expiryOf(old)}: present an X.509-SVID this service trusts`;
    // Three calls at once on the same connection: none is served.
    const answers = await Promise.all([rawUnary(session, 2), rawUnary(session, 3), rawUnary(session, 4)]);
    for (const a of answers) {
      if ('refused' in a) expect(a.refused).to.equal(http2.constants.NGHTTP2_REFUSED_STREAM);
      else
        expect(a).to.deep.equal({ status: String(grpc.status.UNAUTHENTICATED), message: expired, body: '' });
    }
    expect(answers[0]).to.deep.include({ status: String(grpc.status.UNAUTHENTICATED) });
    const [code] = (await goaway) as [number];
    expect(code).to.equal(http2.constants.NGHTTP2_NO_ERROR);
    // And after the GOAWAY the session takes no more calls.
    expect(await rawUnary(session, 5)).to.have.property('refused');
    // A grpc-js client that keeps presenting the expired SVID is refused on every call, each on a new connection.
    const stale = newEchoClient(
      address,
      grpc.credentials.createSsl(
        Buffer.from(bundlePem(serverSrc)),
        Buffer.from(old.keyPem),
        Buffer.from(old.certChainPem),
        {
          checkServerIdentity: () => undefined,
        },
      ),
      { 'grpc.use_local_subchannel_pool': 1 },
    );
    cleanup.push(() => stale.close());
    for (let n = 0; n < 3; n++) {
      const err = (await unary(stale, n).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      expect(err.code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(err.details).to.equal(expired);
    }
  });

  /**
   * A server with `extra` and a client with `svid`, and a bidirectional stream between them that has had one
   * answer; `endedWithin(ms)` is the error that ends the stream, or undefined if none came by then.
   */
  async function openStream(svid: IssuedSvid, extra: Parameters<typeof serve>[1]) {
    const address = await serve(() => new Date(), extra);
    const client = newEchoClient(
      address,
      grpcChannelCredentials(new FixedSource(svid), { serverId: id('server') }),
    );
    cleanup.push(() => client.close());
    const call = client.stream();
    const first = once(call, 'data') as Promise<[Pong]>;
    call.write({ n: 0 });
    expect((await first)[0].callerSerial).to.equal(svid.serialNumber.toLowerCase());
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    return {
      client,
      call,
      endedWithin: (ms: number) =>
        Promise.race([ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))]),
    };
  }

  it('a stream still open on a retired connection is cancelled after maxConnectionAgeGraceMs; the next call reconnects', async () => {
    const svid = await pki.issue('client');
    const stream = await openStream(svid, { maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 300 });
    // Nothing ends the stream from either side: only the server's grace timer can.
    const err = await stream.endedWithin(30_000);
    expect(err, 'the stream was cancelled').to.not.equal(undefined);
    expect(err?.code).to.equal(grpc.status.UNAVAILABLE);
    expect((await unary(stream.client, 1)).callerSerial).to.equal(svid.serialNumber.toLowerCase());
  });

  it('with a long grace, a retired connection keeps its open stream past its age (GOAWAY only)', async () => {
    const svid = await pki.issue('client');
    const stream = await openStream(svid, { maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 3600_000 });
    // Past the age (300 ms) the connection is retired, and the stream goes on.
    expect(await stream.endedWithin(1_500)).to.equal(undefined);
    const answer = once(stream.call, 'data') as Promise<[Pong]>;
    stream.call.write({ n: 1 });
    expect((await answer)[0]).to.deep.include({ n: 1, caller: id('client') });
    const end = once(stream.call, 'end');
    stream.call.end();
    await end;
  });

  it('no call outlives the client certificate it was authenticated with: an open stream is cancelled at its expiry', async () => {
    const svid = await pki.issue('client', { durationSeconds: 3 });
    const notAfter = new Date(expiryOf(svid)).getTime();
    // Age and grace far past the test: only the certificate's expiry can end the stream.
    const stream = await openStream(svid, {
      maxConnectionAgeMs: 24 * 3600_000,
      maxConnectionAgeGraceMs: 24 * 3600_000,
    });
    const err = await stream.endedWithin(30_000);
    expect(err, 'the stream was cancelled').to.not.equal(undefined);
    expect(err?.code).to.equal(grpc.status.UNAVAILABLE);
    expect(Date.now(), 'not before the certificate expired').to.be.at.least(notAfter);
  });
});
