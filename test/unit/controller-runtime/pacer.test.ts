import { expect } from 'chai';
import fc from 'fast-check';
import { FairDeadlineQueue, Pacer } from '../../../src/controller-runtime/pacer.ts';
import { FakeClock } from '../../support/fake-clock.ts';

describe('pacing', () => {
  it('orders by earliest deadline within a group', () => {
    const q = new FairDeadlineQueue<string>();
    q.push('late', 'ns', 300);
    q.push('early', 'ns', 100);
    q.push('mid', 'ns', 200);
    q.push('late', 'ns', 50); // moved: now the earliest
    expect([q.pop(), q.pop(), q.pop(), q.pop()]).to.deep.equal(['late', 'early', 'mid', undefined]);
  });

  it('gives groups turns, so a busy namespace cannot starve a quiet one', () => {
    const q = new FairDeadlineQueue<string>();
    for (let i = 0; i < 1000; i++) q.push(`busy/${i}`, 'busy', i);
    q.push('quiet/a', 'quiet', 5000);
    q.push('quiet/b', 'quiet', 6000);
    const first = [q.pop(), q.pop(), q.pop(), q.pop()];
    expect(first).to.deep.equal(['busy/0', 'quiet/a', 'busy/1', 'quiet/b']);
    expect(q.size).to.equal(998);
  });

  it('pops every live key exactly once, in deadline order per group (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.constantFrom('a', 'b', 'c'), fc.nat(1000))),
        fc.array(fc.integer({ min: 0, max: 30 })),
        (pushes, deletes) => {
          const q = new FairDeadlineQueue<number>();
          const want = new Map<number, { group: string; deadline: number }>();
          for (const [key, group, deadline] of pushes) {
            q.push(key, group, deadline);
            want.set(key, { group, deadline });
          }
          for (const k of deletes) {
            q.delete(k);
            want.delete(k);
          }
          const popped: number[] = [];
          for (let k = q.pop(); k !== undefined; k = q.pop()) popped.push(k);
          expect([...popped].sort((x, y) => x - y)).to.deep.equal([...want.keys()].sort((x, y) => x - y));
          for (const g of ['a', 'b', 'c']) {
            const deadlines = popped
              .filter((k) => want.get(k)?.group === g)
              .map((k) => want.get(k)?.deadline ?? 0);
            expect(deadlines).to.deep.equal([...deadlines].sort((x, y) => x - y));
          }
        },
      ),
    );
  });

  it('grants at the rate without anyone waiting: admit answers at once, onGrant calls back in deadline order', () => {
    const clock = new FakeClock();
    const granted: string[] = [];
    const pacer = new Pacer<string>(10, (k) => granted.push(k), clock, 1);
    expect(pacer.admit('first', 'ns', 900)).to.equal(true); // the burst token
    // No token: the caller is told to come back (it does not wait), the key waits its turn.
    for (const [k, d] of [
      ['c', 300],
      ['a', 100],
      ['b', 200],
    ] as const)
      expect(pacer.admit(k, 'ns', d)).to.equal(false);
    expect(pacer.backlog).to.equal(3);
    clock.advance(99);
    expect(granted).to.deep.equal([]);
    clock.advance(1);
    expect(granted).to.deep.equal(['a']);
    clock.advance(200);
    expect(granted).to.deep.equal(['a', 'b', 'c']);
    // A granted key goes at once when it comes back; only once.
    expect(pacer.admit('a', 'ns', 100)).to.equal(true);
    expect(pacer.admit('a', 'ns', 100)).to.equal(false);
    pacer.cancel('a');
    expect(pacer.backlog).to.equal(0);
    pacer.stop();
  });

  it('a key cancelled while waiting is never granted', () => {
    const clock = new FakeClock();
    const granted: string[] = [];
    const pacer = new Pacer<string>(1, (k) => granted.push(k), clock, 1);
    pacer.admit('x', 'ns', 0);
    pacer.admit('y', 'ns', 1);
    pacer.cancel('y');
    clock.advance(5000);
    expect(granted).to.deep.equal([]);
  });
});

describe('pacing ahead of due times (Pacer.ahead)', () => {
  const SECOND = 1000;

  /**
   * Drives a pacer with keys that are handed over `lookAheadMs` before their due time (as the reconciler
   * does at earliestRenewal) and come back through onGrant (as its reconcile does). Returns each key's grant
   * time minus its due time, in ms, the largest backlog seen and the pacer.
   */
  function run(opts: {
    rate: number;
    burst?: number;
    due: { key: string; group: string; dueAt: number; aheadMs?: number }[];
    lookAheadMs: number;
    /** Hand over with admit() at the due time instead (the pacer as it was before the look-ahead). */
    noLookAhead?: boolean;
    untilMs: number;
    onGrantCheck?: (key: string, pacer: Pacer<string>, now: number) => void;
  }) {
    const clock = new FakeClock();
    const byKey = new Map(opts.due.map((d) => [d.key, d]));
    const lateness = new Map<string, number>();
    let backlogMax = 0;
    const pacer: Pacer<string> = new Pacer<string>(
      opts.rate,
      (key) => {
        const d = byKey.get(key) as { key: string; group: string; dueAt: number };
        opts.onGrantCheck?.(key, pacer, clock.now());
        expect(lateness.has(key), `${key} granted twice`).to.equal(false);
        lateness.set(key, clock.now() - d.dueAt);
        // The caller's reconcile: it comes back and is let through at once.
        const through = opts.noLookAhead
          ? pacer.admit(key, d.group, d.dueAt)
          : pacer.ahead(key, d.group, d.dueAt + 60 * SECOND, d.dueAt);
        expect(through, `${key} let through on its grant`).to.equal(true);
      },
      clock,
      opts.burst,
    );
    for (const d of opts.due) {
      if (opts.noLookAhead) {
        clock.setTimeout(() => {
          if (!pacer.admit(d.key, d.group, d.dueAt)) return;
          lateness.set(d.key, 0);
        }, d.dueAt);
      } else {
        clock.setTimeout(
          () => {
            if (pacer.ahead(d.key, d.group, d.dueAt + 60 * SECOND, d.dueAt)) lateness.set(d.key, 0);
          },
          Math.max(0, d.dueAt - (d.aheadMs ?? opts.lookAheadMs)),
        );
      }
    }
    for (let t = 0; t < opts.untilMs; t += 100) {
      clock.advance(100);
      backlogMax = Math.max(backlogMax, pacer.backlog);
    }
    return { lateness, backlogMax, pacer, clock };
  }

  /** n keys falling due evenly between fromMs and toMs. */
  const bunch = (n: number, fromMs: number, toMs: number, group = 'ns', prefix = 'k') =>
    Array.from({ length: n }, (_, i) => ({
      key: `${prefix}${i}`,
      group,
      dueAt: Math.round(fromMs + ((toMs - fromMs) * i) / n),
    }));

  it('absorbs a bunched cycle above the rate before it falls due: no grant after its due time', () => {
    // 600 renewals due within 20 s (30/s) against 10/s: 400 more than the rate carries in that time.
    const due = bunch(600, 100 * SECOND, 120 * SECOND);
    const paced = run({ rate: 10, due, lookAheadMs: 70 * SECOND, untilMs: 200 * SECOND });
    expect(paced.lateness.size).to.equal(600);
    const late = [...paced.lateness.values()].filter((ms) => ms > 0);
    expect(late, 'grants after their due time').to.deep.equal([]);
    expect(paced.pacer.earlyGrants).to.be.greaterThan(300);
    expect(paced.backlogMax).to.equal(0);
    expect(paced.pacer.aheadCount).to.equal(0);
    // The same load without the look-ahead queues behind the rate: the last one waits about 40 s.
    const before = run({ rate: 10, due, lookAheadMs: 0, noLookAhead: true, untilMs: 200 * SECOND });
    expect(Math.max(...before.lateness.values())).to.be.greaterThan(35 * SECOND);
    expect(before.backlogMax).to.be.greaterThan(300);
  });

  it('starts early as a bunch enters its window faster than the rate, before the held ones alone overflow', () => {
    // As the bench's first cycle: 600 identities created at 20/s; each may renew from 40 s after its
    // creation (its midpoint) and is due at 80 s minus up to 4 s of jitter. 10/s carries them all on time
    // only if early grants start about when the first ones enter their window.
    const due = Array.from({ length: 600 }, (_, i) => {
      const created = i * 50;
      const jitter = ((i * 7919) % 4000) + 0.5;
      return {
        key: `k${i}`,
        group: 'ns',
        dueAt: Math.round(created + 80 * SECOND - jitter),
        aheadMs: Math.round(40 * SECOND - jitter),
      };
    });
    const { lateness, pacer } = run({ rate: 10, due, lookAheadMs: 0, untilMs: 150 * SECOND });
    expect(lateness.size).to.equal(600);
    expect([...lateness.values()].filter((ms) => ms > 0)).to.deep.equal([]);
    expect(pacer.earlyGrants).to.be.greaterThan(400);
  });

  it('takes nothing early when the rate carries the load on time', () => {
    // 5/s against 10/s, each handed over 20 s before it is due (so they enter the window at 5/s too).
    const due = bunch(200, 30 * SECOND, 70 * SECOND);
    const { lateness, pacer } = run({ rate: 10, due, lookAheadMs: 20 * SECOND, untilMs: 100 * SECOND });
    expect(pacer.earlyGrants).to.equal(0);
    expect(lateness.size).to.equal(200);
    // Each went the moment it fell due (to the 100 ms the test advances the clock by).
    for (const [k, ms] of lateness) expect(ms, k).to.be.within(0, 100);
  });

  it('never delays due work for early work: a due key takes the next token', () => {
    const clock = new FakeClock();
    const order: string[] = [];
    const pacer = new Pacer<string>(10, (k) => order.push(k), clock, 1);
    // 100 held keys due at 5 s: more than 10/s carries by then, so they must start at once.
    for (let i = 0; i < 100; i++) pacer.ahead(`held${i}`, 'ns', 60 * SECOND, 5 * SECOND);
    clock.advance(1000);
    const earlyBefore = pacer.earlyGrants;
    expect(earlyBefore).to.be.greaterThan(5);
    // Three keys fall due now (admit): the next three tokens are theirs, ahead of the held ones.
    for (const k of ['due-a', 'due-b', 'due-c']) expect(pacer.admit(k, 'other', 2 * SECOND)).to.equal(false);
    expect(pacer.backlog).to.equal(3);
    const seen = order.length;
    clock.advance(300);
    expect(order.slice(seen)).to.deep.equal(['due-a', 'due-b', 'due-c']);
    expect(pacer.earlyGrants).to.equal(earlyBefore);
    clock.advance(100);
    expect(order.slice(seen + 3)).to.have.length(1);
    expect(pacer.earlyGrants).to.equal(earlyBefore + 1);
    pacer.stop();
  });

  it('a rate too low for the load spends every token, grants in due order and reports the backlog', () => {
    // 1,000 due within 10 s at 10/s, handed over 10 s ahead: 200 can be on time, 800 wait.
    const due = bunch(1000, 10 * SECOND, 20 * SECOND);
    const { lateness, backlogMax, pacer } = run({
      rate: 10,
      due,
      lookAheadMs: 10 * SECOND,
      untilMs: 130 * SECOND,
    });
    expect(lateness.size).to.equal(1000);
    expect(backlogMax).to.be.greaterThan(700);
    expect(pacer.backlog).to.equal(0);
    // Tokens were spent from the start of the window on: the burst (10) plus about 10 s at 10/s went early.
    expect(pacer.earlyGrants).to.be.within(100, 120);
    // The last one is about (1000 - 10 - 10 * 20) / 10 s late, no more: no token went unused.
    const worst = Math.max(...lateness.values());
    expect(worst).to.be.within(75 * SECOND, 82 * SECOND);
    // In due order: grant time minus due time never shrinks by more than one grant interval.
    const ordered = due.map((d) => (lateness.get(d.key) as number) + d.dueAt);
    for (let i = 1; i < ordered.length; i++)
      expect(ordered[i] as number, due[i]?.key).to.be.at.least(ordered[i - 1] as number);
  });

  it('keeps namespaces fair once held work falls due behind the rate', () => {
    const due = [
      ...bunch(300, 10 * SECOND, 11 * SECOND, 'busy', 'busy'),
      { key: 'quiet', group: 'quiet', dueAt: 11 * SECOND + 500 },
    ];
    const granted: string[] = [];
    run({
      rate: 10,
      burst: 1,
      due,
      lookAheadMs: 0,
      untilMs: 60 * SECOND,
      onGrantCheck: (k) => granted.push(k),
    });
    // It fell due behind ~250 busy keys; round robin lets it go within two grants of its due time.
    const at = granted.indexOf('quiet');
    expect(at).to.be.within(0, 20);
  });

  it('grants early only while no due key waits (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dueAt: fc.integer({ min: 0, max: 30_000 }),
            ahead: fc.integer({ min: 0, max: 20_000 }),
            group: fc.constantFrom('a', 'b'),
            admit: fc.boolean(),
          }),
          { maxLength: 120 },
        ),
        fc.integer({ min: 1, max: 40 }),
        (items, rate) => {
          const due = items.map((it, i) => ({ key: `k${i}`, ...it }));
          const clock = new FakeClock();
          const grants = new Map<string, number>();
          const pacer: Pacer<string> = new Pacer<string>(
            rate,
            (key) => {
              const d = due[Number(key.slice(1))] as (typeof due)[number];
              if (clock.now() < d.dueAt)
                expect(pacer.backlog, 'early grant with due work waiting').to.equal(0);
              expect(grants.has(key)).to.equal(false);
              grants.set(key, clock.now());
            },
            clock,
          );
          for (const d of due) {
            clock.setTimeout(
              () => {
                const ok = d.admit
                  ? pacer.admit(d.key, d.group, d.dueAt)
                  : pacer.ahead(d.key, d.group, d.dueAt, d.dueAt);
                if (ok) grants.set(d.key, clock.now());
              },
              d.admit ? d.dueAt : Math.max(0, d.dueAt - d.ahead),
            );
          }
          clock.advance(30_000 + (items.length / rate) * 1000 + 2000);
          // Every key went exactly once, and nothing stays held or waiting.
          expect(grants.size).to.equal(due.length);
          expect(pacer.backlog).to.equal(0);
          expect(pacer.aheadCount).to.equal(0);
          pacer.stop();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('adversarial hand-overs: already due, moved, repeated, cancelled, and clock jumps', () => {
    const clock = new FakeClock();
    clock.advance(10 * SECOND);
    const granted: string[] = [];
    const pacer = new Pacer<string>(1, (k) => granted.push(k), clock, 1);
    // Already due: as admit (the burst token lets it through at once).
    expect(pacer.ahead('due', 'ns', 0, 5 * SECOND)).to.equal(true);
    // Held; handed over again with the same times: one record; moved: the new due time counts.
    expect(pacer.ahead('x', 'ns', 100 * SECOND, 50 * SECOND)).to.equal(false);
    expect(pacer.ahead('x', 'ns', 100 * SECOND, 50 * SECOND)).to.equal(false);
    expect(pacer.aheadCount).to.equal(1);
    expect(pacer.ahead('x', 'ns', 100 * SECOND, 20 * SECOND)).to.equal(false);
    expect(pacer.aheadCount).to.equal(1);
    // Cancelled while held: never granted, even when its due time passes.
    expect(pacer.ahead('gone', 'ns', 100 * SECOND, 15 * SECOND)).to.equal(false);
    pacer.cancel('gone');
    expect(pacer.aheadCount).to.equal(1);
    // A due admit for a held key moves it among the waiting ones (no double entry).
    expect(pacer.ahead('y', 'ns', 100 * SECOND, 40 * SECOND)).to.equal(false);
    expect(pacer.admit('y', 'ns', 90 * SECOND)).to.equal(false);
    expect([pacer.aheadCount, pacer.backlog]).to.deep.equal([1, 1]);
    clock.advance(1 * SECOND);
    expect(granted).to.deep.equal(['y']);
    // The clock jumps back: nothing held is due, nothing is granted early (one held key fits the rate).
    clock.t = 0;
    clock.advance(5 * SECOND);
    expect(granted).to.deep.equal(['y']);
    // The clock jumps far ahead: the held key falls due and is granted; nothing else.
    clock.t = 1000 * SECOND;
    clock.advance(2 * SECOND);
    expect(granted).to.deep.equal(['y', 'x']);
    expect([pacer.aheadCount, pacer.backlog]).to.deep.equal([0, 0]);
    pacer.stop();
  });
});
