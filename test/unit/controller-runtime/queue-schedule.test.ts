import { expect } from 'chai';
import {
  FailedAfterProgress,
  RetryWithin,
  WorkQueue,
  type HandlerResult,
  type Priority,
} from '../../../src/controller-runtime/queue.ts';
import { FakeClock } from '../../support/fake-clock.ts';

/** Lets every settled promise's continuations run (no time passes on the fake clock). */
const flush = () => new Promise((r) => setImmediate(r));

/**
 * A queue whose handler runs are held until the test finishes them: `started` lists keys in start order,
 * `finish(n)` completes the n oldest running ones (each answering `result(key)`).
 */
function harness(
  opts: { concurrency: number; fairShare?: number },
  result: (key: string) => HandlerResult | Error = () => undefined,
) {
  const clock = new FakeClock();
  const started: string[] = [];
  const waits: { key: string; waitedMs: number; priority: Priority }[] = [];
  const running: { key: string; done: () => void }[] = [];
  const q = new WorkQueue(
    {
      concurrency: opts.concurrency,
      baseDelayMs: 1000,
      maxDelayMs: 60_000,
      fairShare: opts.fairShare,
      onStart: (key, waitedMs, priority) => waits.push({ key, waitedMs, priority }),
    },
    (key) =>
      new Promise<HandlerResult>((resolve, reject) => {
        started.push(key);
        running.push({
          key,
          done: () => {
            const r = result(key);
            if (r instanceof Error) reject(r);
            else resolve(r);
          },
        });
      }),
    () => undefined,
    clock,
  );
  return {
    q,
    clock,
    started,
    waits,
    running,
    async finish(n = running.length) {
      for (const r of running.splice(0, n)) r.done();
      await flush();
    },
    /** Finishes runs until nothing runs or waits. */
    async drain() {
      for (let guard = 0; running.length > 0 && guard < 1_000_000; guard++) {
        for (const r of running.splice(0, running.length)) r.done();
        await flush();
      }
    },
  };
}

/**
 * Runs one key whose successive runs answer `answers` in order (an Error is a failure), on one slot, and
 * returns the wait before each retry, found by advancing the fake clock 100 ms at a time.
 */
async function retryWaits(answers: (Error | undefined)[]) {
  const h = harness({ concurrency: 1 }, () => answers.shift());
  h.q.add('k');
  await h.finish();
  const waits: number[] = [];
  let last = h.clock.t;
  while (answers.length > 0) {
    let waited = 0;
    while (h.running.length === 0) {
      h.clock.advance(100);
      waited += 100;
      await flush();
      expect(waited, 'retried within 60 s').to.be.at.most(60_000);
    }
    waits.push(h.clock.t - last);
    last = h.clock.t;
    await h.finish();
  }
  return { h, waits };
}

describe('work queue: priority lanes and schedule (injected clock)', () => {
  it('serves urgent, due, normal, resync in that order, each first in, first out', async () => {
    const h = harness({ concurrency: 1, fairShare: 0 });
    h.q.add('busy');
    h.q.add('r1', 'resync');
    h.q.add('n1');
    h.q.add('d1', 'due');
    h.q.add('u1', 'urgent');
    h.q.add('r2', 'resync');
    h.q.add('n2', 'normal');
    h.q.add('d2', 'due');
    h.q.add('u2', true);
    expect(h.q.depth).to.equal(8);
    expect(h.q.depthOf('resync')).to.equal(2);
    await h.drain();
    expect(h.started).to.deep.equal(['busy', 'u1', 'u2', 'd1', 'd2', 'n1', 'n2', 'r1', 'r2']);
  });

  it('moves a waiting key up to a higher lane, never down, and keeps its waiting time', async () => {
    const h = harness({ concurrency: 1, fairShare: 0 });
    h.q.add('busy');
    h.q.add('a', 'resync');
    h.q.add('b', 'resync');
    h.clock.advance(500);
    h.q.add('b', 'due'); // up
    h.q.add('b', 'resync'); // stays due
    h.q.add('c', 'urgent');
    h.q.add('c', 'normal'); // stays urgent
    expect(h.q.depth).to.equal(3);
    await h.drain();
    expect(h.started).to.deep.equal(['busy', 'c', 'b', 'a']);
    expect(h.waits.find((w) => w.key === 'b')).to.deep.equal({ key: 'b', waitedMs: 500, priority: 'due' });
  });

  it('a key added while it runs runs once more afterwards, in the highest lane asked for', async () => {
    const h = harness({ concurrency: 1, fairShare: 0 });
    h.q.add('k');
    h.q.add('k', 'resync');
    h.q.add('k', 'due');
    h.q.add('other', 'normal');
    await h.finish();
    expect(h.started).to.deep.equal(['k', 'k']);
    await h.drain();
    expect(h.started).to.deep.equal(['k', 'k', 'other']);
    expect(h.waits[1]?.priority).to.equal('due');
  });

  it('releases scheduled keys at their time into the due lane, earliest first, on one timer', async () => {
    const h = harness({ concurrency: 1, fairShare: 0 });
    h.q.addAfter('late', 3000);
    h.q.addAfter('early', 1000);
    h.q.addAfter('late', 5000); // a later schedule does not replace an earlier one
    h.q.addAfter('mid', 2000);
    expect(h.q.scheduled).to.equal(3);
    expect(h.clock.pending).to.equal(1);
    h.clock.advance(999);
    await flush();
    expect(h.started).to.deep.equal([]);
    h.clock.advance(1);
    await flush();
    expect(h.started).to.deep.equal(['early']);
    h.q.add('watch-change');
    h.clock.advance(2000); // mid and late are both due now; they go ahead of the watch change
    await h.drain();
    expect(h.started).to.deep.equal(['early', 'mid', 'late', 'watch-change']);
    expect(h.q.scheduled).to.equal(0);
    expect(h.clock.pending).to.equal(0);
  });

  it('an earlier schedule replaces a later one; the stale entry never runs the key twice', async () => {
    const h = harness({ concurrency: 1 });
    h.q.addAfter('k', 10_000);
    h.q.addAfter('k', 100);
    h.clock.advance(100);
    await h.drain();
    h.clock.advance(20_000);
    await h.drain();
    expect(h.started).to.deep.equal(['k']);
  });

  it('requeues at the time the handler asks', async () => {
    let first = true;
    const h = harness({ concurrency: 1 }, () => {
      if (!first) return undefined;
      first = false;
      return { requeueAfterMs: 60_000 };
    });
    h.q.add('k');
    await h.drain();
    expect(h.q.scheduled).to.equal(1);
    h.clock.advance(59_999);
    await flush();
    expect(h.started).to.have.length(1);
    h.clock.advance(1);
    await h.drain();
    expect(h.started).to.have.length(2);
    expect(h.waits[1]?.priority).to.equal('due');
  });

  it('retries a failure after exponential backoff on the clock, and resets it on success', async () => {
    let failuresLeft = 3;
    const h = harness({ concurrency: 1 }, () => (failuresLeft-- > 0 ? new Error('transient') : undefined));
    h.q.add('k');
    await h.finish();
    expect(h.q.failuresOf('k')).to.equal(1);
    const at: number[] = [];
    for (const wait of [1000, 2000, 4000]) {
      h.clock.advance(wait - 1);
      await flush();
      expect(h.running).to.have.length(0);
      h.clock.advance(1);
      await flush();
      at.push(h.clock.t);
      expect(h.running).to.have.length(1);
      await h.finish();
    }
    expect(at).to.deep.equal([1000, 3000, 7000]);
    expect(h.q.failuresOf('k')).to.equal(0);
  });

  it('starts the backoff over after a failure that made progress, and backs off again from there', async () => {
    // Two plain failures (1 s, 2 s), then one after progress (back to 1 s), then plain ones again (2 s, 4 s).
    const answers: (Error | undefined)[] = [
      new Error('secret 409'),
      new Error('secret 409'),
      new FailedAfterProgress('secret written, status 503'),
      new Error('status 503'),
      new Error('status 503'),
      undefined,
    ];
    const { h, waits } = await retryWaits(answers);
    expect(waits).to.deep.equal([1000, 2000, 1000, 2000, 4000]);
    expect(h.q.failuresOf('k')).to.equal(0);
  });

  it('retries a failure that must come within a time at the latest then, never below the base delay', async () => {
    // Plain failures back off 1, 2, 4, 8 s; one that must come within 3 s waits 3 s (not 16), one within
    // 0.2 s the base delay (1 s), one within more than its backoff its backoff (the count keeps growing).
    const answers: (Error | undefined)[] = [
      new Error('409'),
      new Error('409'),
      new Error('409'),
      new Error('409'),
      new RetryWithin('409, SVID expires in 12 s', 3000),
      new RetryWithin('409, SVID expires in 0.8 s', 200),
      new RetryWithin('409, SVID expires in 1 h', 900_000),
      new RetryWithin('a broken hint', Number.NaN),
      undefined,
    ];
    const { h, waits } = await retryWaits(answers);
    expect(waits).to.deep.equal([1000, 2000, 4000, 8000, 3000, 1000, 60_000, 60_000]);
    expect(h.q.failuresOf('k')).to.equal(0);
  });

  it('gives a lower lane every n-th start under a sustained overload of a higher one', async () => {
    const h = harness({ concurrency: 1, fairShare: 4 });
    for (let i = 0; i < 12; i++) h.q.add(`d${i}`, 'due');
    h.q.add('n0');
    h.q.add('r0', 'resync');
    await h.drain();
    // Starts 4 and 8 go to the highest lane below the top one that has keys: normal, then resync.
    expect(h.started.indexOf('n0')).to.equal(3);
    expect(h.started.indexOf('r0')).to.equal(7);
  });

  it('adversarial: 10,000 keys due at once plus a resync of 20,000 never hold back a renewal that comes due', async () => {
    const h = harness({ concurrency: 8 });
    const due = Array.from({ length: 10_000 }, (_, i) => `due-${i}`);
    const idle = Array.from({ length: 10_000 }, (_, i) => `idle-${i}`);
    for (const k of due) h.q.addAfter(k, 60_000);
    h.q.addAfter('victim', 60_500);
    h.clock.advance(60_000);
    // The periodic resync queues every identity at the same moment, the 10,000 due ones included, and the
    // watch delivers changes for half of the idle ones.
    for (const k of [...due, ...idle, 'victim']) h.q.add(k, 'resync');
    for (const k of idle.slice(0, 5000)) h.q.add(k, 'normal');
    // Eight due keys already run (the concurrency); the rest wait, the victim in the resync lane.
    expect(h.running).to.have.length(8);
    expect(h.q.depth).to.equal(20_001 - 8);
    // 800 of the due keys run; then the victim's renewal time comes.
    for (let i = 0; i < 100; i++) await h.finish(8);
    h.clock.advance(500);
    await h.drain();
    const victimAt = h.started.indexOf('victim');
    const dueAheadOfVictim = due.length;
    // With fairShare 8, at most one start in 8 goes to a lower lane while due keys wait.
    expect(victimAt).to.be.below(Math.ceil((dueAheadOfVictim * 8) / 7) + 8);
    // Every key that was due started before any resync-only key had its second chance: the resync lane got
    // only its fair share while due work waited.
    const lowerBeforeVictim = h.started.slice(0, victimAt).filter((k) => k.startsWith('idle-')).length;
    expect(lowerBeforeVictim).to.be.at.most(Math.ceil(victimAt / 8));
    const victimWait = h.waits.find((w) => w.key === 'victim');
    expect(victimWait?.priority).to.equal('due');
    // Nothing was lost; only the 8 keys re-added by the resync while they ran ran a second time.
    expect(new Set(h.started).size).to.equal(20_001);
    expect(h.started).to.have.length(20_001 + 8);
  });

  it('adversarial: with strict priority, a due key runs before every resync and watch key queued earlier', async () => {
    const h = harness({ concurrency: 2, fairShare: 0 });
    for (let i = 0; i < 10_000; i++) h.q.add(`r${i}`, 'resync');
    for (let i = 0; i < 10_000; i++) h.q.add(`n${i}`, 'normal');
    await h.finish(2);
    h.q.addAfter('victim', 1);
    h.clock.advance(1);
    // r0 and r1 started on an empty queue; n0 and n1 then went ahead of the resync lane.
    expect(h.started).to.deep.equal(['r0', 'r1', 'n0', 'n1']);
    await h.finish();
    // The first start after the victim's time is the victim, ahead of 9,998 watch and 9,998 resync keys.
    expect(h.started.slice(4)).to.deep.equal(['victim', 'n2']);
  });
});
