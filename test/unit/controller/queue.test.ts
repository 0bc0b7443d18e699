import { expect } from 'chai';
import { WorkQueue } from '../../../src/controller/queue.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('work queue', () => {
  it('de-duplicates a key added while it waits', async () => {
    const runs: string[] = [];
    const q = new WorkQueue({ concurrency: 1, baseDelayMs: 10, maxDelayMs: 100 }, async (k) => {
      runs.push(k);
      await sleep(5);
      return undefined;
    });
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('b');
    await q.idle();
    expect(runs).to.deep.equal(['a', 'b']);
  });

  it('runs an urgent key before every non-urgent key waiting, also one already queued', async () => {
    const runs: string[] = [];
    const q = new WorkQueue({ concurrency: 1, baseDelayMs: 10, maxDelayMs: 100 }, async (k) => {
      runs.push(k);
      await sleep(1);
      return undefined;
    });
    q.add('running');
    for (let i = 0; i < 5; i++) q.add(`backlog-${i}`);
    q.add('new', true);
    q.add('backlog-3', true);
    expect(q.depth).to.equal(6);
    await q.idle();
    expect(runs).to.deep.equal([
      'running',
      'new',
      'backlog-3',
      'backlog-0',
      'backlog-1',
      'backlog-2',
      'backlog-4',
    ]);
  });

  it('never runs one key twice at once, and runs it again if it was added meanwhile', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const q = new WorkQueue({ concurrency: 4, baseDelayMs: 10, maxDelayMs: 100 }, async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      await sleep(20);
      active--;
      return undefined;
    });
    q.add('k');
    await sleep(5);
    q.add('k');
    q.add('k');
    await sleep(80);
    await q.idle();
    expect(maxActive).to.equal(1);
    expect(runs).to.equal(2);
  });

  it('bounds concurrency across keys', async () => {
    let active = 0;
    let maxActive = 0;
    const q = new WorkQueue({ concurrency: 3, baseDelayMs: 10, maxDelayMs: 100 }, async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await sleep(10);
      active--;
      return undefined;
    });
    for (let i = 0; i < 20; i++) q.add(`k${i}`);
    await q.idle();
    expect(maxActive).to.equal(3);
  });

  it('retries failures with exponential backoff per key, and resets it on success', async () => {
    const times: number[] = [];
    let failuresLeft = 3;
    const errors: number[] = [];
    const q = new WorkQueue(
      { concurrency: 1, baseDelayMs: 20, maxDelayMs: 1000 },
      async () => {
        times.push(Date.now());
        if (failuresLeft-- > 0) throw new Error('transient');
        return undefined;
      },
      (_k, _e, retryInMs) => errors.push(retryInMs),
    );
    q.add('k');
    while (times.length < 4) await sleep(10);
    expect(errors).to.deep.equal([20, 40, 80]);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    expect(gaps[0]).to.be.at.least(18);
    expect(gaps[2]).to.be.at.least(75);
    expect(q.failuresOf('k')).to.equal(0);
    expect(q.backoffMs(20)).to.equal(1000);
    q.stop();
  });

  it('requeues at the time the handler asks, and an earlier schedule wins', async () => {
    const runs: number[] = [];
    const start = Date.now();
    let first = true;
    const q = new WorkQueue({ concurrency: 1, baseDelayMs: 10, maxDelayMs: 100 }, async () => {
      runs.push(Date.now() - start);
      if (first) {
        first = false;
        return { requeueAfterMs: 60 };
      }
      return undefined;
    });
    q.add('k');
    await sleep(10);
    q.addAfter('k', 500);
    expect(q.scheduled).to.equal(1);
    await sleep(100);
    expect(runs).to.have.length(2);
    expect(runs[1]).to.be.at.least(55);
    q.stop();
  });
});
