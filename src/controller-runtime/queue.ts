// A work queue in the shape of client-go's: each key is queued at most once; a key being processed is
// never processed twice at the same time (a re-add while it runs is held until it finishes); at most
// `concurrency` keys run at once; failures back off exponentially per key; `addAfter` schedules a key for
// later (renewal time) and an earlier schedule wins over a later one.
//
// Keys wait in priority lanes, so work that is due is never stuck behind work that is not:
//   urgent  an identity without an SVID yet (a pod is waiting for its first Secret);
//   due     a key whose scheduled time came (a renewal, a retry) or whose issuance turn was granted;
//   normal  a change seen by a watch;
//   resync  the periodic re-check of every key (lowest: it only looks for drift).
// A key is in one lane at a time; adding it again with a higher priority moves it up. Each lane is first
// in, first out. Lanes are served in order, except that every `fairShare`-th start goes to the highest
// non-empty lane below the top one, so a sustained overload of due work slows watch changes and resyncs
// down instead of stopping them.
//
// The schedule is one min-heap with one timer for its earliest entry (not a timer per key), on an injected
// clock (clock.ts), so tests drive time by hand.
//
// Writes run outside the reconcile slots. A handler that has decided and needs API writes to finish returns
// them as `writes` instead of awaiting them: the key keeps its reconcile slot until one of
// `writeConcurrency` write slots is free (first come, first served), then gives the reconcile slot back and
// its writes run in the write slot. The key stays in process until they end (a re-add waits, as for any
// running key), and what they return (a later run, or an error and its backoff) counts as the handler's. So
// a reconcile slot is held for the decision and never for an API round trip, the writes in flight are
// bounded on their own, and when every write slot is busy the reconcile slots fill with keys waiting for one
// (backpressure: at most concurrency + writeConcurrency keys in process).
import { realClock, type Clock } from './clock.ts';
import { DeadlineHeap, type HeapItem } from './deadline-heap.ts';

export interface QueueOptions {
  concurrency: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Every n-th start serves a lower lane when a higher one is busy (default 8; 0: strict priority). */
  fairShare?: number;
  /** Keys whose `writes` run at once (default: concurrency). */
  writeConcurrency?: number;
  /** Called as a key starts: how long it waited in its lane, and the lane it left. */
  onStart?: (key: string, waitedMs: number, priority: Priority) => void;
}

/**
 * What a handler asks for: nothing, a run at a later time, or a retry with backoff (it threw); or writes to
 * run in a write slot (see the top of this file), whose own result then counts.
 */
export type HandlerResult =
  | { requeueAfterMs?: number; writes?: undefined }
  | { writes: () => Promise<HandlerResult>; requeueAfterMs?: undefined }
  | undefined;

/**
 * A failure after the attempt made progress (a Secret written, its status not): its retry starts the key's
 * backoff over instead of doubling it. A step that keeps failing on its own still backs off, as its next
 * attempt fails with no progress to report. Without this, failures of different steps of one renewal
 * added up: at 30 % injected errors per request a Secret written at the third attempt saw its status retried
 * after 4, 8, 16 s, and the SVID it named expired before the status said so.
 */
export class FailedAfterProgress extends Error {}

/**
 * A failure whose retry must come within `withinMs` however many failures came before (at least the base
 * delay): the handler knows a time the backoff must not pass, e.g. the expiry of the SVID in use while
 * writes of its successor keep failing. Without it, a renewal whose Secret write got 409 after 409 was
 * retried after 16 s, then 32 s, past the expiry of the 20-s SVID it was renewing.
 */
export class RetryWithin extends Error {
  readonly withinMs: number;

  constructor(message: string, withinMs: number, options?: ErrorOptions) {
    super(message, options);
    this.withinMs = withinMs;
  }
}

export const PRIORITIES = ['urgent', 'due', 'normal', 'resync'] as const;
export type Priority = (typeof PRIORITIES)[number];

const LANE: Record<Priority, number> = { urgent: 0, due: 1, normal: 2, resync: 3 };

/** setTimeout's longest delay (~24.8 days); a later schedule is re-armed when that timer fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WorkQueue {
  private readonly opts: QueueOptions;
  private readonly handler: (key: string) => Promise<HandlerResult>;
  private readonly onError: (key: string, err: unknown, retryInMs: number) => void;
  private readonly clock: Clock;
  /** Waiting keys by lane (a Set keeps insertion order and removes in O(1)). */
  private readonly lanes: Set<string>[] = PRIORITIES.map(() => new Set<string>());
  /** The lane of each waiting key. */
  private readonly laneOf = new Map<string, number>();
  /** When each waiting key entered the queue (a move to a higher lane keeps it). */
  private readonly since = new Map<string, number>();
  private readonly processing = new Set<string>();
  /** Keys added while they ran, with the highest priority asked for. */
  private readonly dirtyWhileProcessing = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  /**
   * Each scheduled key's current entry in the heap (one object serves both: a second record per key was
   * ~40 bytes at 10,000 keys); the heap may hold older entries for a key, skipped when they surface.
   */
  private readonly due = new Map<string, HeapItem<string>>();
  private readonly schedule = new DeadlineHeap<string>();
  private seq = 0;
  private timer?: { handle: unknown; at: number };
  private starts = 0;
  private running = 0;
  /** Keys running their writes. */
  private writers = 0;
  /** Keys holding a reconcile slot until a write slot is free, first come first served. */
  private writeWaiters: ((go: boolean) => void)[] = [];
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    opts: QueueOptions,
    handler: (key: string) => Promise<HandlerResult>,
    onError: (key: string, err: unknown, retryInMs: number) => void = () => undefined,
    clock: Clock = realClock,
  ) {
    this.opts = opts;
    this.handler = handler;
    this.onError = onError;
    this.clock = clock;
  }

  /** Keys waiting to run (not counting those running or scheduled for later). */
  get depth(): number {
    return this.laneOf.size;
  }

  /** Keys waiting in one lane. */
  depthOf(priority: Priority): number {
    return (this.lanes[LANE[priority]] as Set<string>).size;
  }

  /** Keys scheduled for later. */
  get scheduled(): number {
    return this.due.size;
  }

  /** Reconcile slots in use: keys deciding, or holding their slot while they wait for a write slot. */
  get active(): number {
    return this.running;
  }

  /** Keys whose writes are in flight (at most writeConcurrency). */
  get writing(): number {
    return this.writers;
  }

  /**
   * Queues `key` in the lane of `priority` (see the top of this file); a key already waiting in a lower
   * lane moves up, one in a higher lane stays. `true` is the same as 'urgent', `false` as 'normal'.
   */
  add(key: string, priority: Priority | boolean = 'normal'): void {
    if (this.stopped) return;
    const lane = LANE[priority === true ? 'urgent' : priority === false ? 'normal' : priority];
    if (this.processing.has(key)) {
      const before = this.dirtyWhileProcessing.get(key);
      if (before === undefined || lane < before) this.dirtyWhileProcessing.set(key, lane);
      return;
    }
    const current = this.laneOf.get(key);
    if (current !== undefined) {
      if (lane >= current) return;
      (this.lanes[current] as Set<string>).delete(key);
    } else {
      this.since.set(key, this.clock.now());
    }
    this.laneOf.set(key, lane);
    (this.lanes[lane] as Set<string>).add(key);
    this.pump();
  }

  /** Runs `key` after `delayMs` in the 'due' lane, unless it is already scheduled sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.add(key, 'due');
      return;
    }
    const at = this.clock.now() + delayMs;
    const existing = this.due.get(key);
    if (existing && existing.deadline <= at) return;
    const entry = { deadline: at, seq: this.seq++, key };
    this.due.set(key, entry);
    this.schedule.push(entry);
    this.arm();
  }

  /** The delay before retry number `failures` of a key: base * 2^(n-1), capped. */
  backoffMs(failures: number): number {
    return Math.min(this.opts.baseDelayMs * 2 ** Math.max(0, failures - 1), this.opts.maxDelayMs);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves when nothing is queued, running or writing (scheduled keys do not count). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.depth === 0 && this.processing.size === 0;
  }

  /** Stops starting keys; writes waiting for a slot are not run (those running finish). */
  stop(): void {
    this.stopped = true;
    const waiting = this.writeWaiters;
    this.writeWaiters = [];
    for (const w of waiting) w(false);
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    this.timer = undefined;
    this.due.clear();
    this.schedule.clear();
    for (const lane of this.lanes) lane.clear();
    this.laneOf.clear();
    this.since.clear();
  }

  /** Moves every key whose time has come into the 'due' lane, in the order of their times. */
  private release(): void {
    const now = this.clock.now();
    for (let top = this.schedule.peek(); top && top.deadline <= now; top = this.schedule.peek()) {
      this.schedule.pop();
      if (this.due.get(top.key) !== top) continue;
      this.due.delete(top.key);
      this.add(top.key, 'due');
    }
  }

  /** Keeps one timer armed for the earliest scheduled key. */
  private arm(): void {
    // Stale heap entries at the top would arm needless wake-ups: drop them first.
    for (let top = this.schedule.peek(); top; top = this.schedule.peek()) {
      if (this.due.get(top.key) === top) break;
      this.schedule.pop();
    }
    const next = this.schedule.peek();
    if (!next) {
      if (this.timer) this.clock.clearTimeout(this.timer.handle);
      this.timer = undefined;
      return;
    }
    if (this.timer && this.timer.at <= next.deadline) return;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    const delay = Math.min(Math.max(0, next.deadline - this.clock.now()), MAX_TIMER_MS);
    const handle = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.release();
      this.arm();
    }, delay);
    handle.unref?.();
    this.timer = { handle, at: next.deadline };
  }

  /** The next key to start: the top non-empty lane, or every fairShare-th start the next lane below it. */
  private next(): { key: string; lane: number } | undefined {
    const lanes = this.lanes;
    const top = lanes.findIndex((l) => l.size > 0);
    if (top < 0) return undefined;
    let lane = top;
    const share = this.opts.fairShare ?? 8;
    if (share > 0 && ++this.starts % share === 0) {
      const lower = lanes.findIndex((l, i) => i > top && l.size > 0);
      if (lower >= 0) lane = lower;
    }
    const set = lanes[lane] as Set<string>;
    const key = set.values().next().value as string;
    set.delete(key);
    this.laneOf.delete(key);
    return { key, lane };
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency) {
      const next = this.next();
      if (next === undefined) break;
      const { key, lane } = next;
      const since = this.since.get(key);
      this.since.delete(key);
      this.opts.onStart?.(key, this.clock.now() - (since ?? this.clock.now()), PRIORITIES[lane] as Priority);
      this.processing.add(key);
      this.running++;
      void this.process(key);
    }
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves true when a write slot is the caller's, false when the queue stopped first. */
  private writeSlot(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    if (this.writers < (this.opts.writeConcurrency ?? this.opts.concurrency)) {
      this.writers++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.writeWaiters.push(resolve));
  }

  /** A write slot came free: the longest waiter gets it. */
  private writeSlotFreed(): void {
    this.writers--;
    const next = this.writeWaiters.shift();
    if (next) {
      this.writers++;
      next(true);
    }
  }

  private async process(key: string): Promise<void> {
    let slotHeld = true;
    try {
      let result = await this.handler(key);
      if (result?.writes) {
        const writes = result.writes;
        if (!(await this.writeSlot())) return;
        // The decision is made: the reconcile slot goes to the next key while the writes are in flight.
        this.running--;
        slotHeld = false;
        this.pump();
        try {
          result = await writes();
        } finally {
          this.writeSlotFreed();
        }
      }
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = err instanceof FailedAfterProgress ? 1 : (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      let delay = this.backoffMs(n);
      if (err instanceof RetryWithin && Number.isFinite(err.withinMs))
        delay = Math.max(this.opts.baseDelayMs, Math.min(delay, err.withinMs));
      this.onError(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.processing.delete(key);
      if (slotHeld) this.running--;
      const dirty = this.dirtyWhileProcessing.get(key);
      if (dirty !== undefined) {
        this.dirtyWhileProcessing.delete(key);
        this.add(key, PRIORITIES[dirty] as Priority);
      }
      this.pump();
    }
  }
}
