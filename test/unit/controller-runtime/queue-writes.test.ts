import { expect } from 'chai';
import { WorkQueue, type HandlerResult } from '../../../src/controller-runtime/queue.ts';
import { FakeClock } from '../../support/fake-clock.ts';

/** Lets every settled promise's continuations run (no time passes on the fake clock). */
const flush = () => new Promise((r) => setImmediate(r));

interface Pending<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
function pending<T>(): Pending<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A queue whose handler decides at once and, for keys in `writers`, returns writes the test finishes by hand
 * (`writes.get(key)`); `decided` and `wrote` list keys in the order their decision and their writes started.
 */
function harness(
  opts: { concurrency: number; writeConcurrency?: number },
  writers: (key: string) => boolean,
) {
  const clock = new FakeClock();
  const decided: string[] = [];
  const wrote: string[] = [];
  const writes = new Map<string, Pending<HandlerResult>>();
  const errors: { key: string; retryInMs: number }[] = [];
  const q = new WorkQueue(
    {
      concurrency: opts.concurrency,
      writeConcurrency: opts.writeConcurrency,
      baseDelayMs: 1000,
      maxDelayMs: 60_000,
    },
    (key) => {
      decided.push(key);
      if (!writers(key)) return Promise.resolve(undefined);
      return Promise.resolve({
        writes: () => {
          wrote.push(key);
          const p = pending<HandlerResult>();
          writes.set(key, p);
          return p.promise;
        },
      });
    },
    (key, _err, retryInMs) => errors.push({ key, retryInMs }),
    clock,
  );
  return { q, clock, decided, wrote, writes, errors };
}

describe('work queue: writes outside the reconcile slots', () => {
  it('a key gives its reconcile slot back while its writes are in flight', async () => {
    const h = harness({ concurrency: 1, writeConcurrency: 4 }, (k) => k === 'a');
    h.q.add('a');
    h.q.add('b');
    await flush();
    expect(h.wrote).to.deep.equal(['a']);
    // b (cache-only) ran in the slot a left, while a's writes are still in flight.
    expect(h.decided).to.deep.equal(['a', 'b']);
    expect(h.q.writing).to.equal(1);
    expect(h.q.active).to.equal(0);
  });

  it('the key stays in process until its writes end: a re-add waits, then runs once', async () => {
    const h = harness({ concurrency: 2, writeConcurrency: 2 }, (k) => k === 'a' && h.decided.length === 1);
    h.q.add('a');
    await flush();
    h.q.add('a');
    h.q.add('a', 'urgent');
    await flush();
    expect(h.decided).to.deep.equal(['a']);
    expect(h.q.depth).to.equal(0);
    h.writes.get('a')?.resolve(undefined);
    await flush();
    expect(h.decided).to.deep.equal(['a', 'a']);
  });

  it('write slots are bounded; keys waiting for one hold their reconcile slot (backpressure), first come first served', async () => {
    const h = harness({ concurrency: 2, writeConcurrency: 1 }, (k) => k !== 'e');
    for (const k of ['a', 'b', 'c', 'd', 'e']) h.q.add(k);
    await flush();
    // a writes; b and c decided and wait for the write slot in the two reconcile slots; d and e wait.
    expect(h.wrote).to.deep.equal(['a']);
    expect(h.decided).to.deep.equal(['a', 'b', 'c']);
    expect(h.q.writing).to.equal(1);
    expect(h.q.active).to.equal(2);
    expect(h.q.depth).to.equal(2);
    h.writes.get('a')?.resolve(undefined);
    await flush();
    // b got the write slot and left its reconcile slot to d, which now waits behind c.
    expect(h.wrote).to.deep.equal(['a', 'b']);
    expect(h.decided).to.deep.equal(['a', 'b', 'c', 'd']);
    h.writes.get('b')?.resolve(undefined);
    await flush();
    expect(h.wrote).to.deep.equal(['a', 'b', 'c']);
    // e needs no writes: it ran in the slot c left, while c writes.
    expect(h.decided).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
    h.writes.get('c')?.resolve(undefined);
    await flush();
    h.writes.get('d')?.resolve(undefined);
    await flush();
    expect(h.wrote).to.deep.equal(['a', 'b', 'c', 'd']);
    expect([h.q.writing, h.q.active, h.q.depth]).to.deep.equal([0, 0, 0]);
  });

  it("the writes' result is the key's: a later run is scheduled on the clock", async () => {
    const h = harness({ concurrency: 1 }, () => h.decided.length === 1);
    h.q.add('a');
    await flush();
    h.writes.get('a')?.resolve({ requeueAfterMs: 5000 });
    await flush();
    expect(h.q.scheduled).to.equal(1);
    h.clock.advance(4999);
    await flush();
    expect(h.decided).to.deep.equal(['a']);
    h.clock.advance(1);
    await flush();
    expect(h.decided).to.deep.equal(['a', 'a']);
  });

  it('writes that fail back off like a failed reconcile, and the write slot comes free', async () => {
    const h = harness({ concurrency: 1, writeConcurrency: 1 }, (k) => k === 'a' || k === 'b');
    h.q.add('a');
    h.q.add('b');
    await flush();
    h.writes.get('a')?.reject(new Error('409'));
    await flush();
    expect(h.errors).to.deep.equal([{ key: 'a', retryInMs: 1000 }]);
    expect(h.q.failuresOf('a')).to.equal(1);
    expect(h.wrote).to.deep.equal(['a', 'b']);
    h.clock.advance(1000);
    await flush();
    expect(h.decided).to.deep.equal(['a', 'b', 'a']);
  });

  it('idle() waits for writes in flight', async () => {
    const h = harness({ concurrency: 1 }, () => true);
    h.q.add('a');
    await flush();
    let idle = false;
    void h.q.idle().then(() => (idle = true));
    await flush();
    expect(idle).to.equal(false);
    h.writes.get('a')?.resolve(undefined);
    await flush();
    expect(idle).to.equal(true);
  });

  it('stop(): writes still waiting for a slot never run; those in flight finish', async () => {
    const h = harness({ concurrency: 2, writeConcurrency: 1 }, () => true);
    h.q.add('a');
    h.q.add('b');
    await flush();
    expect(h.wrote).to.deep.equal(['a']);
    h.q.stop();
    await flush();
    h.writes.get('a')?.resolve(undefined);
    await flush();
    expect(h.wrote).to.deep.equal(['a']);
    expect([h.q.writing, h.q.active]).to.deep.equal([0, 0]);
  });
});
