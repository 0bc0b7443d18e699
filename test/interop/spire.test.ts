// Interop with a real SPIRE (server + agent v1.13.3, built from the Go module proxy by hack/build-spire.sh
// on first use): the Workload API source gets this process's SVIDs from the agent (unix workload
// attestor, by uid), serves gRPC mTLS with them, and follows the rotations SPIRE makes of short-lived
// SVIDs with no failed call.
import type * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { once } from 'node:events';
import { grpcChannelCredentials, grpcServerCredentials } from '@svid-operator/mtls/grpc';
import { authorizeId, WorkloadApiSource, type Svid } from '@svid-operator/mtls';
import { Spire } from '../../hack/lib/spire.ts';
import { newEchoClient, startServer, unary } from '../../examples/grpc-echo.ts';

const TD = 'spire.test';
const SERVER_ID = `spiffe://${TD}/server`;
const CLIENT_ID = `spiffe://${TD}/client`;
// SPIRE renews a workload SVID at about half its lifetime: 20 s gives a rotation every ~10 s.
const TTL = 20;

describe('interop: a real SPIRE agent', function () {
  // The first run builds SPIRE (minutes); later runs take it from the cache.
  this.timeout(30 * 60_000);
  let spire: Spire;
  let serverSource: WorkloadApiSource;
  let clientSource: WorkloadApiSource;

  before(async () => {
    spire = await Spire.start({ trustDomain: TD });
    // Both entries select this process (unix:uid); the hint tells its two SVIDs apart.
    await spire.createEntry({ spiffeId: SERVER_ID, hint: 'server', x509SvidTtlSeconds: TTL });
    await spire.createEntry({ spiffeId: CLIENT_ID, hint: 'client', x509SvidTtlSeconds: TTL });
  });

  after(async () => {
    serverSource?.close();
    clientSource?.close();
    await spire?.stop();
  });

  it('receives both SVIDs (chosen by hint) and the trust bundle from the agent', async () => {
    // The agent answers PERMISSION_DENIED until the entries reach it; the source retries.
    serverSource = new WorkloadApiSource({
      address: spire.address,
      hint: 'server',
      logger: null,
      backoff: { initialMs: 250, maxMs: 1000 },
    }).start();
    clientSource = new WorkloadApiSource({
      address: spire.address,
      hint: 'client',
      logger: null,
      backoff: { initialMs: 250, maxMs: 1000 },
    }).start();
    await Promise.all([serverSource.ready(120_000), clientSource.ready(120_000)]);
    const server = serverSource.current();
    const client = clientSource.current();
    expect(server.spiffeId).to.equal(SERVER_ID);
    expect(client.spiffeId).to.equal(CLIENT_ID);
    const lifetime = server.notAfter.getTime() - server.notBefore.getTime();
    expect(lifetime).to.be.at.most((TTL + 60) * 1000);
    expect(serverSource.trustDomains()).to.deep.equal([TD]);
    const roots = serverSource.bundleFor(TD)?.roots ?? [];
    expect(roots.length).to.be.at.least(1);
    // The SVID chains to the agent's bundle of its own trust domain (the source checked it; so does this).
    const top = server.certificates.at(-1);
    expect(roots.some((r) => top?.checkIssued(r) && top.verify(r.publicKey))).to.equal(true);
  });

  it('serves gRPC mTLS with the SPIRE SVIDs and follows SPIRE rotations of both sides with no failed call', async () => {
    // The long-lived channel below keeps calling until the first client SVID has expired: the server retires
    // its connection (maxConnectionAgeMs, a quarter of the 20 s lifetime) so it reconnects with a newer one.
    const { server, address } = await startServer(
      grpcServerCredentials(serverSource, { authorize: authorizeId(CLIENT_ID) }),
      serverSource,
    );
    const client = newEchoClient(address, grpcChannelCredentials(clientSource, { serverId: SERVER_ID }));
    const serverSerials = new Set([serverSource.current().serialNumber]);
    const clientSerials = new Set([clientSource.current().serialNumber]);
    serverSource.on('update', (s: Svid) => serverSerials.add(s.serialNumber));
    clientSource.on('update', (s: Svid) => clientSerials.add(s.serialNumber));
    const errors: string[] = [];
    serverSource.on('error', (e) => errors.push(e.message));
    clientSource.on('error', (e) => errors.push(e.message));
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const seenCallerSerials = new Set<string>();
    const longLivedSerials = new Set<string>();
    const firstClientNotAfter = clientSource.current().notAfter.getTime();
    const loop = async () => {
      for (let n = 0; !stop; n++) {
        try {
          const r = await unary(client, n);
          longLivedSerials.add(r.callerSerial);
          if (r.n === n && r.caller === CLIENT_ID) ok++;
          else failures.push(JSON.stringify(r));
        } catch (err) {
          failures.push((err as grpc.ServiceError).message);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const loops = [loop(), loop()];
    try {
      // Two rotations of each side, as SPIRE makes them.
      const deadline = Date.now() + 5 * 60_000;
      while ((serverSerials.size < 3 || clientSerials.size < 3) && Date.now() < deadline) {
        await Promise.race([once(serverSource, 'update'), once(clientSource, 'update')]);
        // A new channel after each rotation connects with the SVIDs current now.
        const fresh = newEchoClient(address, grpcChannelCredentials(clientSource, { serverId: SERVER_ID }), {
          'grpc.use_local_subchannel_pool': 1,
        });
        seenCallerSerials.add((await unary(fresh, -1)).callerSerial);
        fresh.close();
      }
      // Past the expiry of the first client SVID (by 2 s), still calling on the same channel.
      const untilExpired = firstClientNotAfter + 2000 - Date.now();
      if (untilExpired > 0) await new Promise((r) => setTimeout(r, untilExpired));
    } finally {
      stop = true;
      await Promise.all(loops);
      client.close();
      server.forceShutdown();
    }
    expect(serverSerials.size, 'server SVIDs seen').to.be.at.least(3);
    expect(clientSerials.size, 'client SVIDs seen').to.be.at.least(3);
    expect(failures).to.deep.equal([]);
    expect(ok).to.be.greaterThan(50);
    // The long-lived channel presented more than its first client SVID.
    expect(longLivedSerials.size, 'client serials seen on the long-lived channel').to.be.at.least(2);
    // Fresh channels presented rotated client SVIDs, not only the first one.
    expect([...seenCallerSerials].some((s) => s !== [...clientSerials][0])).to.equal(true);
    expect(errors).to.deep.equal([]);
  });
});
