// gRPC and Workload API figures for `npm run bench`:
//  - calls per second through the library's rotating gRPC credentials (CertificateProvider + SPIFFE-ID
//    authorization) ÷ grpc-js's plain TLS credentials with the same certificates, same load, rounds
//    alternating which goes first (target >= 0.95);
//  - for the Workload API source: time from the agent sending a new SVID to the first TLS handshake in
//    which a server fed by the source presents it (p50/p99; target p99 <= 1 s). The agent is the scripted
//    Workload API server of hack/lib (a real SPIRE agent rotates only on its own schedule; the interop test
//    covers SPIRE itself).
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { FakeWorkloadApi } from '../hack/lib/fake-workload-api.ts';
import { grpcChannelCredentials, grpcServerCredentials } from '@svid-operator/mtls/grpc';
import { authorizeId, WorkloadApiSource } from '@svid-operator/mtls';
import { createSelfSignedCa, issueSvid, loadCa, type IssuedSvid } from '../src/pki/index.ts';
import { newEchoClient, startServer, unary, type EchoClientType } from '../examples/grpc-echo.ts';
import { FixedSource } from '../test/support/fixed-source.ts';
import { svidMessage } from '../test/support/svid-der.ts';
import { median, percentile } from './stats.ts';

export interface GrpcResult {
  callsPerSecond: number;
  plainCallsPerSecond: number;
  callRatio: number;
  /** Calls per CPU-second of this process (client and server both run here), library ÷ plain: the same
   * comparison with the machine's other load taken out. */
  cpuCallRatio: number;
  failedCalls: number;
  workloadApiRotations: number;
  workloadApiRotationP50Ms: number;
  workloadApiRotationP99Ms: number;
}

const TD = 'bench.example.org';
const idOf = (sa: string) => `spiffe://${TD}/ns/bench/sa/${sa}`;

/** Unary calls completed in `ms` with `concurrency` calls in flight; failures counted, not thrown. */
async function callsFor(
  client: EchoClientType,
  ms: number,
  concurrency: number,
): Promise<{ calls: number; failed: number; cpuSeconds: number }> {
  const cpu = process.cpuUsage();
  const end = performance.now() + ms;
  let calls = 0;
  let failed = 0;
  const worker = async () => {
    for (let n = 0; performance.now() < end; n++) {
      try {
        await unary(client, n);
        calls++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const used = process.cpuUsage(cpu);
  return { calls, failed, cpuSeconds: (used.user + used.system) / 1e6 };
}

export async function benchGrpc(opts: {
  roundMs: number;
  rounds: number;
  rotations: number;
}): Promise<GrpcResult> {
  const ca = await loadCa(await createSelfSignedCa({ trustDomain: TD }));
  const serverSvid = await issueSvid(ca, { spiffeId: idOf('server'), durationSeconds: 3600 });
  const clientSvid = await issueSvid(ca, { spiffeId: idOf('client'), durationSeconds: 3600 });

  // The same certificates both ways.
  // A source (to read the caller's verified ID in the handlers) for both servers, so that the handlers do
  // the same work and the ratio measures the credentials and the per-call check only.
  const serverSource = new FixedSource(serverSvid);
  const lib = await startServer(
    grpcServerCredentials(serverSource, { authorize: authorizeId(idOf('client')) }),
    serverSource,
  );
  const libClient = newEchoClient(
    lib.address,
    grpcChannelCredentials(new FixedSource(clientSvid), { serverId: idOf('server') }),
  );
  const plain = await startServer(
    grpc.ServerCredentials.createSsl(
      Buffer.from(serverSvid.bundlePem),
      [{ private_key: Buffer.from(serverSvid.keyPem), cert_chain: Buffer.from(serverSvid.certChainPem) }],
      true,
    ),
    serverSource,
  );
  const plainClient = newEchoClient(
    plain.address,
    grpc.credentials.createSsl(
      Buffer.from(clientSvid.bundlePem),
      Buffer.from(clientSvid.keyPem),
      Buffer.from(clientSvid.certChainPem),
      {
        checkServerIdentity: () => undefined,
      },
    ),
  );
  const concurrency = 16;
  const libRates: number[] = [];
  const plainRates: number[] = [];
  const libPerCpu: number[] = [];
  const plainPerCpu: number[] = [];
  let failedCalls = 0;
  try {
    // Warm both (connections, JIT) before measuring.
    await callsFor(libClient, Math.min(500, opts.roundMs), concurrency);
    await callsFor(plainClient, Math.min(500, opts.roundMs), concurrency);
    for (let r = 0; r < opts.rounds; r++) {
      const order: ['lib' | 'plain', EchoClientType][] = [
        ['lib', libClient],
        ['plain', plainClient],
      ];
      if (r % 2 === 1) order.reverse();
      for (const [which, client] of order) {
        const { calls, failed, cpuSeconds } = await callsFor(client, opts.roundMs, concurrency);
        failedCalls += failed;
        (which === 'lib' ? libRates : plainRates).push((calls * 1000) / opts.roundMs);
        (which === 'lib' ? libPerCpu : plainPerCpu).push(calls / cpuSeconds);
      }
    }
  } finally {
    libClient.close();
    plainClient.close();
    lib.server.forceShutdown();
    plain.server.forceShutdown();
  }
  const callsPerSecond = median(libRates);
  const plainCallsPerSecond = median(plainRates);

  const latencies = await rotationLatencies(ca, opts.rotations);
  return {
    callsPerSecond,
    plainCallsPerSecond,
    callRatio: callsPerSecond / plainCallsPerSecond,
    cpuCallRatio: median(libPerCpu) / median(plainPerCpu),
    failedCalls,
    workloadApiRotations: latencies.length,
    workloadApiRotationP50Ms: percentile(latencies, 50),
    workloadApiRotationP99Ms: percentile(latencies, 99),
  };
}

/** The serial a server presents to a new TLS connection (ALPN h2, client SVID presented). */
function presentedSerial(address: string, client: IssuedSvid): Promise<string> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host,
        port: Number(port),
        cert: client.certChainPem,
        key: client.keyPem,
        ca: client.bundlePem,
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

async function rotationLatencies(
  ca: Awaited<ReturnType<typeof loadCa>>,
  rotations: number,
): Promise<number[]> {
  const api = await FakeWorkloadApi.start();
  const clientSvid = await issueSvid(ca, { spiffeId: idOf('client'), durationSeconds: 3600 });
  const first = await issueSvid(ca, { spiffeId: idOf('server'), durationSeconds: 3600 });
  api.state = { svids: [svidMessage(first)], crl: [], federatedBundles: new Map() };
  const source = new WorkloadApiSource({ address: api.address, logger: null }).start();
  const latencies: number[] = [];
  let server: grpc.Server | undefined;
  try {
    await source.ready(30_000);
    const started = await startServer(
      grpcServerCredentials(source, { authorize: authorizeId(idOf('client')) }),
      source,
    );
    server = started.server;
    const next: IssuedSvid[] = [];
    for (let i = 0; i < rotations; i++)
      next.push(await issueSvid(ca, { spiffeId: idOf('server'), durationSeconds: 3600 }));
    for (const svid of next) {
      const want = svid.serialNumber.toLowerCase();
      const t0 = performance.now();
      api.push({ svids: [svidMessage(svid)], crl: [], federatedBundles: new Map() });
      // New handshakes until one presents the new SVID; bounded by 10 s.
      for (;;) {
        if ((await presentedSerial(started.address, clientSvid)) === want) break;
        if (performance.now() - t0 > 10_000)
          throw new Error(`the server did not present SVID ${want} within 10 s`);
      }
      latencies.push(performance.now() - t0);
    }
  } finally {
    server?.forceShutdown();
    source.close();
    await api.stop();
  }
  return latencies;
}
