// The renewal schedule (renewalTime, earliestRenewal, pacingDeadline) driving the issuance pacer as the
// reconciler does, on an injected clock: each identity is handed over with Pacer.ahead() when its look-ahead
// window opens, ordered by its pacing deadline once due, and renewed when the pacer grants it. No API server,
// no sleeps: a whole first renewal cycle of the bench's steady state runs in a second or so.
import { expect } from 'chai';
import fc from 'fast-check';
import { Pacer } from '../../../src/controller-runtime/pacer.ts';
import { DeadlineHeap } from '../../../src/controller-runtime/deadline-heap.ts';
import {
  earliestRenewal,
  MAX_JITTER_SECONDS,
  pacingDeadline,
  renewalTime,
} from '../../../src/renewal/schedule.ts';
import { FakeClock } from '../../support/fake-clock.ts';

interface Identity {
  uid: string;
  group: string;
  createdMs: number;
  notAfter: number;
  renewal: number;
  earlyFrom: number;
  /** When the SVID is half-way through the lifetime asked for (earliestRenewal never goes before it). */
  midpoint: number;
  deadline: number;
}

/** A first SVID issued at `createdMs` (first issuances are not paced): its schedule as the reconciler keeps it. */
function issued(
  uid: string,
  group: string,
  createdMs: number,
  durationSeconds: number,
  renewBeforeSeconds: number,
  order: 'pacingDeadline' | 'notAfter',
): Identity {
  const notAfter = new Date(createdMs + durationSeconds * 1000);
  const renewal = renewalTime(notAfter, renewBeforeSeconds, uid);
  const earlyFrom = earliestRenewal(renewal, notAfter, durationSeconds, renewBeforeSeconds);
  return {
    uid,
    group,
    createdMs,
    notAfter: notAfter.getTime(),
    renewal: renewal.getTime(),
    earlyFrom: earlyFrom.getTime(),
    midpoint: notAfter.getTime() - (durationSeconds * 1000) / 2,
    // notAfter: how the reconciler queued renewals before pacingDeadline.
    deadline: order === 'notAfter' ? notAfter.getTime() : pacingDeadline(notAfter, renewBeforeSeconds, uid),
  };
}

interface Cycle {
  /** Grant time minus renewal time, per uid (negative: taken early). */
  lateness: Map<string, number>;
  /** Grants made while a key whose renewal time had come waited (must stay 0). */
  earlyWhileDueWaited: number;
  /** Grants of a key while a handed-over key of the same group with an earlier renewal time was not granted. */
  outOfOrder: number;
  /** Grants before the key's earliestRenewal, or early ones before its midpoint (must stay 0). */
  beforeWindow: number;
  backlogMax: number;
  aheadMax: number;
  pacer: Pacer<string>;
}

/**
 * One renewal cycle: each identity is handed over at its earlyFrom (the reconcile the work queue runs then)
 * and, when granted, comes back and is let through at once (its reconcile renews it). Runs until `untilMs`.
 */
function firstCycle(identities: Identity[], rate: number, untilMs: number): Cycle {
  const clock = new FakeClock();
  const byUid = new Map(identities.map((i) => [i.uid, i]));
  const lateness = new Map<string, number>();
  // Handed over and not yet granted, per group, by renewal time (lazy deletion of granted ones).
  const open = new Map<string, DeadlineHeap<string>>();
  let seq = 0;
  const out = { earlyWhileDueWaited: 0, outOfOrder: 0, beforeWindow: 0, backlogMax: 0, aheadMax: 0 };
  const pacer: Pacer<string> = new Pacer<string>(
    rate,
    (uid) => {
      const id = byUid.get(uid) as Identity;
      const now = clock.now();
      expect(lateness.has(uid), `${uid} granted twice`).to.equal(false);
      lateness.set(uid, now - id.renewal);
      if (now < id.renewal && pacer.backlog > 0) out.earlyWhileDueWaited++;
      // Never before its window opened, and never early in the first half of its life (a renewal time
      // that the jitter put before the midpoint is due there, not early).
      if (now < id.earlyFrom || (now < id.renewal && now < id.midpoint)) out.beforeWindow++;
      const heap = open.get(id.group) as DeadlineHeap<string>;
      for (let top = heap.peek(); top && lateness.has(top.key) && top.key !== uid; top = heap.peek())
        heap.pop();
      const first = heap.peek();
      if (first && first.key !== uid && first.deadline < id.renewal) out.outOfOrder++;
      // The reconcile the grant starts: it hands the key over again and is let through.
      expect(pacer.ahead(uid, id.group, id.deadline, id.renewal), `${uid} let through`).to.equal(true);
    },
    clock,
  );
  const sample = () => {
    out.backlogMax = Math.max(out.backlogMax, pacer.backlog);
    out.aheadMax = Math.max(out.aheadMax, pacer.aheadCount);
  };
  for (const id of [...identities].sort((a, b) => a.earlyFrom - b.earlyFrom)) {
    clock.advance(Math.max(0, id.earlyFrom - clock.now()));
    let heap = open.get(id.group);
    if (!heap) open.set(id.group, (heap = new DeadlineHeap<string>()));
    heap.push({ key: id.uid, deadline: id.renewal, seq: seq++ });
    if (pacer.ahead(id.uid, id.group, id.deadline, id.renewal))
      lateness.set(id.uid, clock.now() - id.renewal);
    sample();
  }
  while (clock.now() < untilMs) {
    clock.advance(Math.min(100, untilMs - clock.now()));
    sample();
  }
  pacer.stop();
  return { lateness, ...out, pacer };
}

/** A UUID-shaped uid per index (the jitter hashes the uid, so any distinct strings spread it). */
const uid = (i: number) => `5e1f0c2a-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

describe('the first renewal cycle through the pacer (renewal schedule + Pacer.ahead, simulated)', () => {
  const SECOND = 1000;

  describe("the bench's full-size steady state: 10,000 identities created at 100/s, 10-minute SVIDs, 50/s", () => {
    const N = 10_000;
    const durationSeconds = 600;
    const renewBeforeSeconds = 200; // the default, a third of the duration
    const bound = Math.min(renewBeforeSeconds / 10, MAX_JITTER_SECONDS) * SECOND; // 20 s
    const wave = (order: 'pacingDeadline' | 'notAfter') =>
      Array.from({ length: N }, (_, i) =>
        issued(uid(i), 'bench', i * 10, durationSeconds, renewBeforeSeconds, order),
      );
    // The last renewal falls due by 100 + 400 s; 600 s leaves room for any backlog to drain.
    const until = 700 * SECOND;

    it('renews every identity once and none later than the jitter bound when due renewals wait by renewal time', function () {
      this.timeout(60_000);
      const c = firstCycle(wave('pacingDeadline'), 50, until);
      expect(c.lateness.size).to.equal(N);
      const late = [...c.lateness.values()].filter((ms) => ms > bound);
      expect(late.length, `later than ${bound} ms (latest ${Math.max(...c.lateness.values())} ms)`).to.equal(
        0,
      );
      expect(c.earlyWhileDueWaited).to.equal(0);
      expect(c.beforeWindow).to.equal(0);
      expect(c.outOfOrder).to.equal(0);
      expect(c.pacer.aheadCount).to.equal(0);
      expect(c.pacer.backlog).to.equal(0);
      // The cycle arrives at twice the rate: most go early, and some still wait once due (but not too long).
      expect(c.pacer.earlyGrants).to.be.greaterThan(N / 2);
      expect(c.backlogMax).to.be.greaterThan(0);
    });

    it('the same cycle queued by notAfter (as before pacingDeadline) has renewals later than the jitter bound', function () {
      this.timeout(60_000);
      const c = firstCycle(wave('notAfter'), 50, until);
      expect(c.lateness.size).to.equal(N);
      const late = [...c.lateness.values()].filter((ms) => ms > bound);
      expect(late.length).to.be.greaterThan(0);
      expect(Math.max(...late)).to.be.greaterThan(bound);
      // Due keys went out of renewal-time order: the jitter put later renewals ahead of waiting ones.
      expect(c.outOfOrder).to.be.greaterThan(0);
      // The safety properties hold either way.
      expect(c.earlyWhileDueWaited).to.equal(0);
      expect(c.beforeWindow).to.equal(0);
    });
  });

  it('grants every key once, never before its window or midpoint, never early while due work waits, due work in renewal-time order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            createdMs: fc.integer({ min: 0, max: 10_000 }), // bunched: windows overlap
            group: fc.constantFrom('a', 'b', 'c'),
          }),
          { minLength: 1, maxLength: 120, size: 'large' },
        ),
        fc.integer({ min: 30, max: 300 }), // duration, s
        fc.double({ min: 0.05, max: 0.5, noNaN: true }), // renewBefore as a fraction of it
        fc.integer({ min: 1, max: 10 }), // rate per second
        fc.boolean(), // one group only (then the order holds across all keys)
        (specs, durationSeconds, fraction, rate, oneGroup) => {
          const renewBeforeSeconds = durationSeconds * fraction;
          const ids = specs.map((s, i) =>
            issued(
              uid(i),
              oneGroup ? 'a' : s.group,
              s.createdMs,
              durationSeconds,
              renewBeforeSeconds,
              'pacingDeadline',
            ),
          );
          // Long enough for the slowest rate to grant every key after the last one fell due.
          const until = Math.max(...ids.map((i) => i.renewal)) + (ids.length / rate + 2) * SECOND;
          const c = firstCycle(ids, rate, until);
          expect(c.lateness.size).to.equal(ids.length);
          expect(c.earlyWhileDueWaited).to.equal(0);
          expect(c.beforeWindow).to.equal(0);
          expect(c.outOfOrder).to.equal(0);
          expect(c.pacer.aheadCount).to.equal(0);
          expect(c.pacer.backlog).to.equal(0);
        },
      ),
      { numRuns: 150 },
    );
  });
});
