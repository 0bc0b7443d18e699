// A work queue in the shape of client-go's: each key is queued at most once; a key being processed is
// never processed twice at the same time (a re-add while it runs is held until it finishes); at most
// `concurrency` keys run at once; failures back off exponentially per key; `addAfter` schedules a key for
// later (renewal time) and an earlier schedule wins over a later one.

export interface QueueOptions {
  concurrency: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** What a handler asks for: nothing, a run at a later time, or a retry with backoff. */
export type HandlerResult = { requeueAfterMs?: number } | undefined;

export class WorkQueue {
  private readonly opts: QueueOptions;
  private readonly handler: (key: string) => Promise<HandlerResult>;
  private readonly queue: string[] = [];
  /** Keys added as urgent: served before `queue`. */
  private readonly urgent: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirtyWhileProcessing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly onError: (key: string, err: unknown, retryInMs: number) => void;
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    opts: QueueOptions,
    handler: (key: string) => Promise<HandlerResult>,
    onError: (key: string, err: unknown, retryInMs: number) => void = () => undefined,
  ) {
    this.opts = opts;
    this.handler = handler;
    this.onError = onError;
  }

  /** Keys waiting to run (not counting those running or scheduled for later). */
  get depth(): number {
    return this.queue.length + this.urgent.length;
  }

  get scheduled(): number {
    return this.timers.size;
  }

  /** Queues `key`; an `urgent` one runs before every non-urgent key waiting (e.g. a first issuance). */
  add(key: string, urgent = false): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirtyWhileProcessing.add(key);
      return;
    }
    if (this.queued.has(key)) {
      if (urgent && !this.urgent.includes(key)) {
        const i = this.queue.indexOf(key);
        if (i >= 0) this.queue.splice(i, 1);
        this.urgent.push(key);
      }
      return;
    }
    this.queued.add(key);
    (urgent ? this.urgent : this.queue).push(key);
    this.pump();
  }

  /** Runs `key` after `delayMs`, unless it is already scheduled sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    // Timers beyond ~24.8 days overflow setTimeout; a resync reaches those keys long before.
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        this.add(key);
      },
      Math.min(delayMs, 2 ** 31 - 1),
    );
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** The delay before retry number `failures` of a key: base * 2^(n-1), capped. */
  backoffMs(failures: number): number {
    return Math.min(this.opts.baseDelayMs * 2 ** Math.max(0, failures - 1), this.opts.maxDelayMs);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves when nothing is queued or running (scheduled keys do not count). */
  idle(): Promise<void> {
    if (this.depth === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.urgent.length = 0;
    this.queued.clear();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.depth > 0) {
      const key = (this.urgent.length > 0 ? this.urgent.shift() : this.queue.shift()) as string;
      this.queued.delete(key);
      this.processing.add(key);
      this.running++;
      void this.process(key);
    }
    if (this.depth === 0 && this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.handler(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = this.backoffMs(n);
      this.onError(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.processing.delete(key);
      this.running--;
      if (this.dirtyWhileProcessing.delete(key)) this.add(key);
      this.pump();
    }
  }
}
