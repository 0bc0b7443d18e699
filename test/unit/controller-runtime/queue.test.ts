import { expect } from 'chai';
import { WorkQueue } from '../../../src/controller-runtime/queue.ts';

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
  // Backoff, requeue times and lanes run on an injected clock: queue-schedule.test.ts.
});
