import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { LeaseElector, type ElectionLogger } from '../../src/leader/index.ts';
import { FaultProxy } from '../harness/fault-proxy.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { getControlPlane, kubeClient, kubeConfig } from '../harness/shared-control-plane.ts';

// Shortened timings with client-go's proportions; the margin between renew deadline and lease duration
// (1 s) is what keeps two leaders apart, so it must hold on a loaded 2-core machine too.
const LEASE_MS = 3_000;
const RENEW_MS = 2_000;
const RETRY_MS = 500;
const LEASE_NAME = 'svid-operator-leader';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(
  what: string,
  timeoutMs: number,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

interface Candidate {
  id: string;
  elector: LeaseElector;
  /** Local times at which onStartedLeading / the end of onStoppedLeading happened. */
  started: number[];
  stopped: number[];
  newLeaders: string[];
  done: Promise<void>;
}

/**
 * Runs candidates against one Lease and checks, every few milliseconds and at every callback, that no
 * two of them lead at once: by isLeader(), and by "between onStartedLeading and the end of
 * onStoppedLeading", which is the window in which an operator would write.
 */
class Election {
  readonly candidates: Candidate[] = [];
  readonly logs: string[] = [];
  readonly overlaps: string[] = [];
  samples = 0;
  private readonly working = new Set<string>();
  private readonly sampler: NodeJS.Timeout;
  private readonly kc: KubeClient;
  private readonly namespace: string;
  private readonly drainMs: number;

  constructor(kc: KubeClient, namespace: string, drainMs = 0) {
    this.kc = kc;
    this.namespace = namespace;
    this.drainMs = drainMs;
    this.sampler = setInterval(() => {
      this.samples++;
      const leading = this.candidates.filter((c) => c.elector.isLeader()).map((c) => c.id);
      if (leading.length > 1) this.overlaps.push(`isLeader() true for ${leading.join(', ')}`);
    }, 5);
  }

  start(id: string, kc = this.kc, retryPeriodMs = RETRY_MS): Candidate {
    const t0 = performance.now();
    const line =
      (level: string) =>
      (message: string, meta?: object): void => {
        this.logs.push(
          `${(performance.now() - t0).toFixed(0).padStart(6)} ${level} ${id} ${message} ${JSON.stringify(meta)}`,
        );
      };
    const logger: ElectionLogger = {
      debug: line('debug'),
      info: line('info'),
      warn: line('warn'),
      error: line('error'),
    };
    const elector = new LeaseElector({
      kc,
      namespace: this.namespace,
      name: LEASE_NAME,
      identity: id,
      leaseDurationMs: LEASE_MS,
      renewDeadlineMs: RENEW_MS,
      retryPeriodMs,
      logger,
    });
    const c: Candidate = { id, elector, started: [], stopped: [], newLeaders: [], done: Promise.resolve() };
    c.done = elector.run({
      onStartedLeading: (signal) => {
        expect(signal.aborted).to.equal(false);
        if (this.working.size > 0)
          this.overlaps.push(`${id} started while ${[...this.working].join(', ')} worked`);
        this.working.add(id);
        c.started.push(performance.now());
      },
      onStoppedLeading: async () => {
        // An operator finishing its in-flight writes; a release must wait for this.
        await sleep(this.drainMs);
        this.working.delete(id);
        c.stopped.push(performance.now());
      },
      onNewLeader: (leader) => c.newLeaders.push(leader),
    });
    this.candidates.push(c);
    return c;
  }

  leaders(): Candidate[] {
    return this.candidates.filter((c) => c.elector.isLeader());
  }

  async waitForLeader(timeoutMs: number, except?: Candidate): Promise<Candidate> {
    await until('a leader', timeoutMs, () => this.leaders().some((c) => c !== except));
    const leader = this.leaders()[0];
    if (!leader) throw new Error('leader vanished');
    return leader;
  }

  async stopAll(): Promise<void> {
    clearInterval(this.sampler);
    await Promise.all(this.candidates.map((c) => c.elector.stop({ release: false })));
  }
}

describe('leader election on a Lease (real API server)', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let client: KubeClient;
  let coordination: k8s.CoordinationV1Api;
  let core: k8s.CoreV1Api;
  let ns: string;
  let election: Election | undefined;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    client = await kubeClient(cp);
    coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    core = kc.makeApiClient(k8s.CoreV1Api);
  });

  beforeEach(async () => {
    ns = `le-${randomBytes(3).toString('hex')}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  afterEach(async function () {
    await election?.stopAll();
    if (this.currentTest?.state === 'failed' && election) console.log(election.logs.join('\n'));
    election = undefined;
    await core.deleteNamespace({ name: ns });
  });

  const lease = () => coordination.readNamespacedLease({ namespace: ns, name: LEASE_NAME });

  it('lets exactly one of three candidates lead at any instant, through a lost leader and a release', async () => {
    const e = new Election(client, ns);
    election = e;
    const candidates = ['a', 'b', 'c'].map((id) => e.start(id));
    const first = await e.waitForLeader(10_000);
    const created = await lease();
    expect(created.spec?.holderIdentity).to.equal(first.id);
    expect(created.spec?.leaseDurationSeconds).to.equal(LEASE_MS / 1000);
    // Several renewals: the leader must keep it, and nobody else may take it over.
    await sleep(3 * LEASE_MS);
    expect(e.leaders()).to.deep.equal([first]);
    expect(first.started).to.have.length(1);

    await first.elector.stop({ release: false });
    const second = await e.waitForLeader(3 * LEASE_MS);
    await sleep(2 * LEASE_MS);
    await second.elector.stop({ release: true });
    const third = await e.waitForLeader(3 * LEASE_MS);
    await sleep(LEASE_MS);

    expect(new Set([first.id, second.id, third.id]).size).to.equal(3);
    expect(e.overlaps).to.deep.equal([]);
    expect(e.samples).to.be.greaterThan(1000);
    const after = await lease();
    expect(after.spec?.holderIdentity).to.equal(third.id);
    expect(after.spec?.leaseTransitions).to.equal(2);
    // Every candidate saw each new holder it observed reported once, in order.
    expect(candidates.find((c) => c.id === third.id)?.newLeaders).to.deep.equal([
      first.id,
      second.id,
      third.id,
    ]);
  });

  it('hands over after about a lease duration when the leader stops without releasing', async () => {
    election = new Election(client, ns);
    election.start('a');
    election.start('b');
    const leader = await election.waitForLeader(10_000);
    await sleep(2 * LEASE_MS);
    const before = await lease();

    const stoppedAt = performance.now();
    await leader.elector.stop({ release: false });
    expect(leader.stopped).to.have.length(1);
    const standby = await election.waitForLeader(3 * LEASE_MS, leader);
    const takeover = (standby.started[0] ?? 0) - stoppedAt;
    console.log(`      takeover without release: ${takeover.toFixed(0)} ms (lease ${LEASE_MS} ms)`);

    // The standby waited for the lease it last saw renewed to run out: at least a lease duration from
    // that renewal, which was at most one retry period (plus jitter) before the leader stopped.
    expect(takeover).to.be.greaterThan(LEASE_MS - 2.2 * RETRY_MS);
    expect(takeover).to.be.lessThan(LEASE_MS + 2 * 2.2 * RETRY_MS + 1_000);
    const after = await lease();
    expect(after.spec?.holderIdentity).to.equal(standby.id);
    expect(after.spec?.leaseTransitions).to.equal((before.spec?.leaseTransitions ?? 0) + 1);
    expect(election.overlaps).to.deep.equal([]);
  });

  it('hands over within about a retry period when the leader releases, after it finished its work', async () => {
    const drainMs = 300;
    election = new Election(client, ns, drainMs);
    election.start('a');
    election.start('b');
    const leader = await election.waitForLeader(10_000);
    await sleep(LEASE_MS);
    const before = await lease();

    const stoppingAt = performance.now();
    const stopping = leader.elector.stop({ release: true });
    const standby = await election.waitForLeader(LEASE_MS, leader);
    await stopping;
    const drained = leader.stopped[0] ?? Number.POSITIVE_INFINITY;
    const startedAt = standby.started[0] ?? 0;
    const takeover = startedAt - drained;
    console.log(
      `      takeover after release: ${takeover.toFixed(0)} ms after the old leader drained, ` +
        `${(startedAt - stoppingAt).toFixed(0)} ms after stop() (retry ${RETRY_MS} ms, drain ${drainMs} ms)`,
    );
    expect(drained - stoppingAt).to.be.at.least(drainMs - 5);
    expect(takeover).to.be.greaterThan(0);
    expect(takeover).to.be.lessThan(2.2 * RETRY_MS + 500);
    const after = await lease();
    expect(after.spec?.holderIdentity).to.equal(standby.id);
    expect(after.spec?.leaseTransitions).to.equal((before.spec?.leaseTransitions ?? 0) + 1);
    expect(election.overlaps).to.deep.equal([]);
  });

  it('steps down when the API server is gone longer than the renew deadline, and leads again after it returns', async () => {
    election = new Election(client, ns);
    const a = election.start('a');
    election.start('b');
    await election.waitForLeader(10_000);
    await sleep(LEASE_MS);
    const leader = election.leaders()[0] ?? a;

    const sigtermAt = performance.now();
    let restartAt: number;
    try {
      await cp.stopApiServer();
      // Stepping down is timed from the last renewal the leader sent, before the server went away.
      await until('the leader to step down', RENEW_MS + 1_500, () => leader.stopped.length === 1);
      const steppedDown = (leader.stopped[0] ?? 0) - sigtermAt;
      console.log(
        `      stepped down ${steppedDown.toFixed(0)} ms after SIGTERM to the API server (renew deadline ${RENEW_MS} ms)`,
      );
      expect(steppedDown).to.be.lessThan(RENEW_MS + 1_500);
      // Keep it down past a whole lease: without the API server nobody may lead, not even the standby.
      await sleep(Math.max(0, LEASE_MS + RENEW_MS - (performance.now() - sigtermAt)));
      expect(election.leaders()).to.deep.equal([]);
    } finally {
      restartAt = performance.now();
      await cp.startApiServer();
    }
    const next = await election.waitForLeader(LEASE_MS + 3 * 2.2 * RETRY_MS + 2_000);
    console.log(
      `      ${next.id} leads again ${((next.started.at(-1) ?? 0) - restartAt).toFixed(0)} ms after the restart began ` +
        `(outage ${(restartAt - sigtermAt).toFixed(0)} ms)`,
    );
    expect(election.overlaps).to.deep.equal([]);
    const after = await lease();
    expect(after.spec?.holderIdentity).to.equal(next.id);
  });

  describe('through the fault proxy', () => {
    let proxy: FaultProxy;

    beforeEach(async () => {
      proxy = await FaultProxy.forControlPlane(cp);
    });

    afterEach(async () => {
      await election?.stopAll();
      await proxy.close();
    });

    /** 'a' talks to the API server through the proxy and leads; 'b' talks to it directly and stands by. */
    async function proxiedLeader(
      standbyRetryMs = RETRY_MS,
    ): Promise<{ e: Election; a: Candidate; b: Candidate }> {
      const e = new Election(client, ns);
      election = e;
      const a = e.start('a', await proxy.kubeClient());
      expect(await e.waitForLeader(10_000)).to.equal(a);
      const b = e.start('b', client, standbyRetryMs);
      await until('b to see a as leader', 5_000, () => b.newLeaders.includes('a'));
      return { e, a, b };
    }

    for (const [what, fault] of [
      ['cut off from the API server', { kind: 'drop' }],
      ['stuck in renewals that never answer', { kind: 'delay', ms: 60_000 }],
    ] as const) {
      it(`lets the standby lead only after the leader, ${what}, stepped down`, async () => {
        const { e, a, b } = await proxiedLeader();
        await sleep(LEASE_MS);
        const faultAt = performance.now();
        proxy.addRule({ name: 'partition', path: /leases/, fault });
        await until('b to lead', 2 * LEASE_MS + 2_000, () => b.elector.isLeader());
        const aStopped = a.stopped[0] ?? Number.POSITIVE_INFINITY;
        const bStarted = b.started[0] ?? 0;
        console.log(
          `      a stepped down ${(aStopped - faultAt).toFixed(0)} ms after the fault, ` +
            `b led ${(bStarted - faultAt).toFixed(0)} ms after it (gap ${(bStarted - aStopped).toFixed(0)} ms)`,
        );
        expect(e.overlaps).to.deep.equal([]);
        expect(bStarted).to.be.greaterThan(aStopped);
        expect(aStopped - faultAt).to.be.lessThan(RENEW_MS + 500);
        expect(proxy.stats().rules[0]?.injected).to.be.greaterThan(0);

        // Healed, a sees b's renewals and stays a standby.
        proxy.removeRule('partition');
        await until('a to see b as leader', 5_000, () => a.newLeaders.at(-1) === 'b');
        await sleep(LEASE_MS);
        expect(e.leaders()).to.deep.equal([b]);
        expect(e.overlaps).to.deep.equal([]);
      });
    }

    it('puts a deleted Lease back under the same leader, while the standby waits out the old one', async () => {
      // The standby polls every 100 ms and the leader is cut off for 700 ms around the deletion, so
      // the standby sees the Lease missing (several times) before the leader can put it back.
      const { e, a, b } = await proxiedLeader(100);
      const before = await lease();
      proxy.addRule({ name: 'pause', path: /leases/, fault: { kind: 'drop' } });
      await coordination.deleteNamespacedLease({ namespace: ns, name: LEASE_NAME });
      await sleep(700);
      proxy.removeRule('pause');
      await until('the Lease to be back', RENEW_MS, () =>
        lease().then(
          () => true,
          () => false,
        ),
      );
      await sleep(2 * LEASE_MS);
      expect(e.overlaps).to.deep.equal([]);
      expect(a.stopped).to.deep.equal([]);
      expect(b.started).to.deep.equal([]);
      const after = await lease();
      expect(after.metadata?.uid).not.to.equal(before.metadata?.uid);
      expect(after.spec?.holderIdentity).to.equal('a');
      expect(after.spec?.leaseTransitions).to.equal(before.spec?.leaseTransitions);
    });

    it('keeps leading through 409 Conflict and 503 answers to its renewals, retrying with a fresh read', async () => {
      const { e, a, b } = await proxiedLeader();
      const before = await lease();
      // Never injects: counts the leader's reads of the Lease.
      proxy.addRule({
        name: 'reads',
        method: 'GET',
        path: /leases/,
        fault: { kind: 'drop' },
        probability: 0,
      });
      proxy.addRule({
        name: 'conflict',
        method: 'PUT',
        path: /leases/,
        fault: { kind: 'status', code: 409 },
        times: 2,
      });
      proxy.addRule({
        name: 'unavailable',
        method: 'PUT',
        path: /leases/,
        fault: { kind: 'status', code: 503, retryAfterSeconds: 1 },
        times: 1,
      });
      await until('every fault to be injected', 5_000, () => proxy.stats().injected === 3);
      await sleep(LEASE_MS);
      expect(a.stopped).to.deep.equal([]);
      expect(b.started).to.deep.equal([]);
      expect(e.leaders()).to.deep.equal([a]);
      const after = await lease();
      expect(after.spec?.holderIdentity).to.equal('a');
      expect(String(after.spec?.renewTime)).not.to.equal(String(before.spec?.renewTime));
      expect(after.spec?.leaseTransitions).to.equal(before.spec?.leaseTransitions);
      // Renewals go straight to a write; only the 409 sent the leader back to read the Lease first.
      expect(proxy.stats().rules.find((r) => r.name === 'reads')?.matched).to.equal(1);
    });
  });
});
