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
