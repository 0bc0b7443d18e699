// The in-pod library: handshakes per second through its reloading server against a plain node:tls server
// with the same static certificate (same run, interleaved rounds, medians), and the time from a
// kubelet-style Secret volume swap to the first handshake that presents the new certificate, with a
// continuous request load counting failures.
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { SecretVolume, type Files } from '../hack/lib/secret-volume.ts';
import {
  authorizeAny,
  authorizeMemberOf,
  createHttpsServer,
  createTlsServer,
  SvidAgent,
  SvidSource,
} from '@svid-operator/mtls';
import { createSelfSignedCa, issueSvid, loadCa, type IssuedSvid } from '../src/pki/index.ts';
import { median, percentile } from './stats.ts';

export interface LibraryResult {
  handshakeRatio: number;
  libraryHandshakesPerSecond: number;
  plainHandshakesPerSecond: number;
  swapP50Ms: number;
  swapP99Ms: number;
  swaps: number;
  failedRequests: number;
  requests: number;
}

const files = (s: IssuedSvid): Files => ({
  'tls.crt': s.certChainPem,
  'tls.key': s.keyPem,
  'ca.crt': s.bundlePem,
});

/** Full handshakes per second from `concurrency` loops that connect, finish the handshake and close. */
async function handshakeRate(port: number, client: IssuedSvid, ms: number, concurrency = 4): Promise<number> {
  const context = tls.createSecureContext({
    cert: client.certChainPem,
    key: client.keyPem,
    ca: client.bundlePem,
  });
  let n = 0;
  const end = performance.now() + ms;
  const loop = async () => {
    while (performance.now() < end) {
      await new Promise<void>((resolve, reject) => {
        const s = tls.connect({
          port,
          host: '127.0.0.1',
          secureContext: context,
          checkServerIdentity: () => undefined,
        });
        // The server writes one byte once it has accepted the peer, so both sides finished the handshake.
        s.once('data', () => {
          n++;
          s.destroy();
          resolve();
        });
        s.once('error', reject);
      });
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  return n / ((performance.now() - start) / 1000);
}

export async function benchLibrary(opts: {
  roundMs: number;
  rounds: number;
  swaps: number;
}): Promise<LibraryResult> {
  const ca = await loadCa(await createSelfSignedCa({ trustDomain: 'bench.example' }));
  const issue = (sa: string) =>
    issueSvid(ca, { spiffeId: `spiffe://bench.example/ns/bench/sa/${sa}`, durationSeconds: 3600 });
  const serverSvid = await issue('server');
  const client = await issue('client');
  const volume = await SecretVolume.create(files(serverSvid));
  const source = await SvidSource.open(volume.dir, { logger: null });
  try {
    const library = createTlsServer(source, { authorize: authorizeMemberOf('bench.example') }, (socket) =>
      socket.end('k'),
    );
    const plain = tls.createServer(
      {
        cert: serverSvid.certChainPem,
        key: serverSvid.keyPem,
        ca: serverSvid.bundlePem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => socket.end('k'),
    );
    for (const s of [library, plain]) s.listen(0, '127.0.0.1');
    await Promise.all([once(library, 'listening'), once(plain, 'listening')]);
    const port = (s: tls.Server) => (s.address() as AddressInfo).port;
    await handshakeRate(port(library), client, opts.roundMs / 2);
    await handshakeRate(port(plain), client, opts.roundMs / 2);
    const lib: number[] = [];
    const ref: number[] = [];
    // Alternate which server goes first, so drift within a round (GC, the other core) hits both alike.
    for (let i = 0; i < opts.rounds; i++) {
      if (i % 2 === 0) {
        lib.push(await handshakeRate(port(library), client, opts.roundMs));
        ref.push(await handshakeRate(port(plain), client, opts.roundMs));
      } else {
        ref.push(await handshakeRate(port(plain), client, opts.roundMs));
        lib.push(await handshakeRate(port(library), client, opts.roundMs));
      }
    }
    library.close();
    plain.close();

    // Swaps under load: an HTTPS server on the same source, requests in a loop, 100 rotations.
    const clientVolume = await SecretVolume.create(files(client));
    const clientSource = await SvidSource.open(clientVolume.dir, { logger: null });
    const server = createHttpsServer(source, { authorize: authorizeAny() }, (_req, res) =>
      res.writeHead(200).end('ok'),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const serverId = 'spiffe://bench.example/ns/bench/sa/server';
    const pooled = new SvidAgent(clientSource, { serverId }, { keepAlive: true, maxSockets: 4 });
    const fresh = new SvidAgent(clientSource, { serverId }, { keepAlive: false });
    const get = (agent: https.Agent) =>
      new Promise<string>((resolve, reject) => {
        https
          .get(url, { agent }, (res) => {
            const serial =
              (res.socket as tls.TLSSocket).getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '';
            res.resume();
            res.on('end', () =>
              res.statusCode === 200 ? resolve(serial) : reject(new Error(`status ${res.statusCode}`)),
            );
          })
          .on('error', reject);
      });
    let stop = false;
    let requests = 0;
    let failed = 0;
    const loop = async (agent: https.Agent) => {
      while (!stop) {
        requests++;
        await get(agent).catch(() => failed++);
      }
    };
    const load = [loop(pooled), loop(pooled), loop(fresh)];
    const latencies: number[] = [];
    const next = await Promise.all(Array.from({ length: opts.swaps }, () => issue('server')));
    for (const svid of next) {
      const t0 = performance.now();
      await volume.swap(files(svid));
      for (;;) {
        if ((await get(fresh).catch(() => '')) === svid.serialNumber) break;
        if (performance.now() - t0 > 10_000) throw new Error('a swap was not picked up within 10 s');
      }
      latencies.push(performance.now() - t0);
    }
    stop = true;
    await Promise.all(load);
    pooled.destroy();
    fresh.destroy();
    server.close();
    clientSource.close();
    await clientVolume.remove();

    const libraryHandshakesPerSecond = median(lib);
    const plainHandshakesPerSecond = median(ref);
    return {
      handshakeRatio: libraryHandshakesPerSecond / plainHandshakesPerSecond,
      libraryHandshakesPerSecond,
      plainHandshakesPerSecond,
      swapP50Ms: percentile(latencies, 50),
      swapP99Ms: percentile(latencies, 99),
      swaps: latencies.length,
      failedRequests: failed,
      requests,
    };
  } finally {
    source.close();
    await volume.remove();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const swaps = Number(process.env.SVID_BENCH_SWAPS ?? 100);
  console.log(await benchLibrary({ roundMs: 1000, rounds: 6, swaps }));
}
