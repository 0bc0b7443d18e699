// The informer's cycle with an injected clock and watch transport: liveness over long idle periods,
// paged relists, and handlers that throw. The same loop against the real API server is exercised by
// test/integration/idle-health.test.ts and every operator test.
import { expect } from 'chai';
import type { KubeClient } from '../../../src/kube/client.ts';
import {
  Informer,
  TRANSIENT_REFUSALS,
  type InformerOptions,
  type ListPage,
  type Source,
} from '../../../src/controller-runtime/informer.ts';
import type { WatchEnd, WatchRequest } from '../../../src/kube/watch-stream.ts';

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
}

const obj = (name: string, rv = '1'): Obj => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

/** A monotonic clock whose timers fire only when the test advances it. */
class FakeClock {
  now = 0;
  private timers: { at: number; fire: () => void }[] = [];
  readonly clock = () => this.now;
  readonly sleep = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const timer = { at: this.now + ms, fire: resolve };
      this.timers.push(timer);
      signal.addEventListener('abort', () => {
        this.timers = this.timers.filter((t) => t !== timer);
        resolve();
      });
    });
  /** Moves time forward in steps, letting the loop run after each. */
  async advance(ms: number, stepMs = 1000): Promise<void> {
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + stepMs);
      const due = this.timers.filter((t) => t.at <= this.now);
      this.timers = this.timers.filter((t) => t.at > this.now);
      for (const t of due) t.fire();
      await flush();
    }
  }
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const logs: { level: string; message: string; meta?: Record<string, unknown> }[] = [];
const log = {
  error: (message: string, meta?: Record<string, unknown>) => logs.push({ level: 'error', message, meta }),
  warn: (message: string, meta?: Record<string, unknown>) => logs.push({ level: 'warn', message, meta }),
  info: (message: string, meta?: Record<string, unknown>) => logs.push({ level: 'info', message, meta }),
  debug: (message: string, meta?: Record<string, unknown>) => logs.push({ level: 'debug', message, meta }),
};

function source(items: () => Obj[], calls: { limit: number; continue?: string }[] = []): Source<Obj> {
  return {
    async list(page) {
      calls.push(page);
      const all = items();
      const start = page.continue ? Number(page.continue) : 0;
      const next = start + page.limit;
      const result: ListPage<Obj> = { items: all.slice(start, next), resourceVersion: '100' };
      if (next < all.length) result.continue = String(next);
      return result;
    },
    watchPath: '/api/v1/namespaces/ns/things',
    query: {},
  };
}

/** A watch that opens and stays open, silent, until aborted. */
const silentWatch = (opened: WatchRequest[]) => async (req: WatchRequest) => {
  opened.push(req);
  req.onOpen();
  await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
  return { kind: 'error', error: new Error('aborted'), aborted: true } satisfies WatchEnd;
};

const WINDOW = 5 * 60_000;

/** An informer of `things` on the fake clock (its clock and sleep), listing from `src`. */
const onClock = (t: FakeClock, src: Source<Obj>, options: InformerOptions) =>
  new Informer(none, 'things', src, log, { clock: t.clock, sleep: t.sleep, ...options });
const none = undefined as unknown as KubeClient;

describe('Informer', () => {
  let informer: Informer<Obj> | undefined;
  beforeEach(() => (logs.length = 0));
  afterEach(() => informer?.stop());

  it('stays alive through an hour of an open watch with nothing to report', async () => {
    const t = new FakeClock();
    const opened: WatchRequest[] = [];
    informer = onClock(
      t,
      source(() => []),
      {
        openWatch: silentWatch(opened),
      },
    );
    informer.start();
    await informer.synced;
    await flush();
    await t.advance(60 * 60_000, 10_000);
    expect(informer.alive(WINDOW)).to.equal(true);
    expect(opened).to.have.length(1);
    // No client-side timer ends the watch; only a dead connection, well beyond the server's own timeout.
    const timeout = Number(opened[0]?.query.timeoutSeconds);
    expect(timeout).to.be.within(300, 600);
    expect(opened[0]?.deadConnectionMs).to.be.greaterThan(timeout * 1000);
  });

  it('counts watches the API server closes at their timeout as contact, and re-opens them at once', async () => {
    const t = new FakeClock();
    let opens = 0;
    informer = onClock(
      t,
      source(() => []),
      {
        watchTimeoutSeconds: () => 30,
        // The server closes each watch after 30 s without having sent anything.
        openWatch: async (req) => {
          opens++;
          req.onOpen();
          await t.sleep(30_000, req.signal);
          return { kind: 'closed' };
        },
      },
    );
    informer.start();
    await informer.synced;
    for (let i = 0; i < 12; i++) {
      await t.advance(5 * 60_000);
      expect(informer.alive(WINDOW), `after ${(i + 1) * 5} minutes`).to.equal(true);
    }
    expect(opens).to.be.within(119, 121);
    expect(informer.watchesClosed).to.be.within(119, 120);
    expect(logs.filter((l) => l.level !== 'debug')).to.deep.equal([]);
  });

  it('is not alive once its watch has failed for longer than the window', async () => {
    const t = new FakeClock();
    informer = onClock(
      t,
      source(() => []),
      {
        openWatch: async () => ({ kind: 'error', error: new Error('connect ECONNREFUSED'), aborted: false }),
      },
    );
    informer.start();
    await informer.synced;
    await t.advance(WINDOW - 10_000);
    expect(informer.alive(WINDOW)).to.equal(true);
    await t.advance(20_000);
    expect(informer.alive(WINDOW)).to.equal(false);
  });

  /** Refuses the first `refusals` watches with the watch cache's 429 (Retry-After 5 s), then stays open. */
  function refusedThenOpen(refusals: number, opened: number[], t: FakeClock) {
    const body = JSON.stringify({
      kind: 'Status',
      status: 'Failure',
      message: 'storage is (re)initializing',
      reason: 'TooManyRequests',
      details: { retryAfterSeconds: 5 },
      code: 429,
    });
    const open: WatchRequest[] = [];
    return async (req: WatchRequest): Promise<WatchEnd> => {
      opened.push(t.now);
      if (opened.length <= refusals) return { kind: 'status', code: 429, body };
      return silentWatch(open)(req);
    };
  }

  it("retries a watch refused with 429 after the Status's Retry-After, logging it at info while it is transient", async () => {
    const t = new FakeClock();
    const opened: number[] = [];
    informer = onClock(
      t,
      source(() => []),
      {
        openWatch: refusedThenOpen(2, opened, t),
      },
    );
    informer.start();
    await informer.synced;
    await flush();
    await t.advance(30_000, 250);
    // Refused at 0, again 5 s later (its own backoff would have been 1 s), open 5 s after that.
    expect(opened).to.deep.equal([0, 5000, 10_000]);
    expect(logs.map((l) => [l.level, l.message])).to.deep.equal([
      ['info', 'things: watch refused for now (429), retrying'],
      ['info', 'things: watch refused for now (429), retrying'],
    ]);
    expect(logs[1]?.meta?.refusalsInARow).to.equal(2);
    expect(informer.alive(WINDOW)).to.equal(true);
  });

  it('warns when 429 refusals persist past TRANSIENT_REFUSALS, and at once for any other refusal', async () => {
    const t = new FakeClock();
    const opened: number[] = [];
    informer = onClock(
      t,
      source(() => []),
      {
        openWatch: refusedThenOpen(TRANSIENT_REFUSALS + 2, opened, t),
      },
    );
    informer.start();
    await informer.synced;
    await t.advance(120_000, 500);
    expect(opened).to.have.length(TRANSIENT_REFUSALS + 3);
    expect(logs.map((l) => l.level)).to.deep.equal([
      ...Array<string>(TRANSIENT_REFUSALS).fill('info'),
      'warn',
      'warn',
    ]);
    informer.stop();

    logs.length = 0;
    const forbidden = onClock(
      t,
      source(() => []),
      {
        openWatch: async () => ({
          kind: 'status',
          code: 403,
          body: '{"kind":"Status","reason":"Forbidden"}',
        }),
      },
    );
    informer = forbidden;
    forbidden.start();
    await forbidden.synced;
    await flush();
    expect(logs.map((l) => [l.level, l.message, l.meta?.status])).to.deep.equal([
      ['warn', 'things: watch refused', 403],
    ]);
  });

  it('is not alive while its list keeps failing for longer than the window', async () => {
    const t = new FakeClock();
    informer = onClock(
      t,
      { ...source(() => []), list: () => Promise.reject(new Error('HTTP 403: forbidden')) },
      { openWatch: silentWatch([]) },
    );
    informer.start();
    await t.advance(WINDOW + 10_000);
    expect(informer.alive(WINDOW)).to.equal(false);
    expect(logs.some((l) => l.level === 'warn' && /list failed/.test(l.message))).to.equal(true);
  });

  it('lists in pages, passing each continue token, and a 410 relists only the differences', async () => {
    const t = new FakeClock();
    let items = Array.from({ length: 25 }, (_, i) => obj(`o${i}`));
    const calls: { limit: number; continue?: string }[] = [];
    const opened: WatchRequest[] = [];
    const changes: string[] = [];
    informer = onClock(
      t,
      source(() => items, calls),
      {
        pageSize: 10,
        openWatch: silentWatch(opened),
      },
    );
    informer.on((event, o) => void changes.push(`${event} ${o.metadata.name}`));
    informer.start();
    await informer.synced;
    await flush();
    expect(calls).to.deep.equal([
      { limit: 10, continue: undefined },
      { limit: 10, continue: '10' },
      { limit: 10, continue: '20' },
    ]);
    expect(informer.cache.size).to.equal(25);
    expect(changes).to.have.length(25);
    expect(opened[0]?.query.resourceVersion).to.equal('100');

    // While the watch was down o3 changed and o7 went away; the server answers the watch with 410.
    items = items
      .filter((o) => o.metadata.name !== 'o7')
      .map((o) => (o.metadata.name === 'o3' ? obj('o3', '2') : o));
    changes.length = 0;
    calls.length = 0;
    opened[0]?.onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await flush();
    expect(informer.relists).to.equal(2);
    expect(calls).to.have.length(3);
    expect(changes).to.deep.equal(['upsert o3', 'delete o7']);
    expect(informer.cache.size).to.equal(24);
    expect(opened).to.have.length(2);
  });

  it('logs a handler that throws or rejects, and still runs the other handlers', async () => {
    const t = new FakeClock();
    let deliver: ((type: string, o: unknown) => void) | undefined;
    informer = onClock(
      t,
      source(() => []),
      {
        openWatch: async (req) => {
          deliver = req.onEvent;
          req.onOpen();
          await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve()));
          return { kind: 'error', error: new Error('aborted'), aborted: true };
        },
      },
    );
    const seen: string[] = [];
    informer.on(() => {
      throw new Error('boom in a handler');
    });
    informer.on(async () => {
      throw new Error('async boom');
    });
    informer.on((_e, o) => void seen.push(o.metadata.name));
    informer.start();
    await informer.synced;
    await flush();
    deliver?.('ADDED', obj('a', '5'));
    deliver?.('ADDED', obj('b', '6'));
    await flush();
    expect(seen).to.deep.equal(['a', 'b']);
    const errors = logs.filter((l) => l.level === 'error');
    expect(errors.map((l) => l.meta?.error)).to.deep.equal([
      'boom in a handler',
      'boom in a handler',
      'async boom',
      'async boom',
    ]);
    expect(errors[0]?.message).to.equal('things: handling a watch event failed');
    expect(errors[0]?.meta?.object).to.equal('ns/a');
    expect(informer.alive(WINDOW)).to.equal(true);
  });
});
