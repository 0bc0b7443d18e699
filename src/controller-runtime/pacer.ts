// Generic pacing machinery: which waiting key goes next (FairDeadlineQueue, no I/O, no clock) and a token
// bucket that hands out grants without anyone waiting on it (Pacer). A caller asks `admit(key)`; when no
// token is free the key is remembered and the caller returns at once (no worker is held), and `onGrant(key)`
// is called when its turn comes, so the caller can run it again. Work that may go early (a renewal inside
// its look-ahead window) is handed over with `ahead(key)`: the pacer holds it until its due time and grants
// it before then only from tokens no due work waits for, and only when the renewals it holds would not all
// fit into the rate by their due times otherwise (so an unbunched load is renewed on time, not early).
import { realClock, type Clock } from './clock.ts';
import { DeadlineHeap } from './deadline-heap.ts';

/**
 * Waiting keys, each in a group (a namespace): groups take turns (round robin, so one group's churn cannot
 * starve the others), and within a group the earliest deadline goes first. Re-pushing a key moves it to its
 * new deadline; delete() forgets it.
 */
export class FairDeadlineQueue<K> {
  private readonly groups = new Map<string, DeadlineHeap<K>>();
  private readonly live = new Map<K, { group: string; deadline: number; seq: number }>();
  private turn: string[] = [];
  private seq = 0;

  get size(): number {
    return this.live.size;
  }

  has(key: K): boolean {
    return this.live.has(key);
  }

  push(key: K, group: string, deadline: number): void {
    const old = this.live.get(key);
    if (old && old.group === group && old.deadline === deadline) return;
    const entry = { group, deadline, seq: this.seq++ };
    this.live.set(key, entry);
    let heap = this.groups.get(group);
    if (!heap) {
      heap = new DeadlineHeap<K>();
      this.groups.set(group, heap);
      this.turn.push(group);
    }
    heap.push({ key, deadline, seq: entry.seq });
  }

  delete(key: K): boolean {
    return this.live.delete(key);
  }

  /** The next key: from the group whose turn it is, its earliest deadline. */
  pop(): K | undefined {
    for (let group = this.turn.shift(); group !== undefined; group = this.turn.shift()) {
      const heap = this.groups.get(group);
      if (!heap) continue;
      let found: K | undefined;
      for (let top = heap.pop(); top; top = heap.length > 0 ? heap.pop() : undefined) {
        const cur = this.live.get(top.key);
        if (cur && cur.group === group && cur.seq === top.seq) {
          this.live.delete(top.key);
          found = top.key;
          break;
        }
      }
      if (heap.length > 0) this.turn.push(group);
      else this.groups.delete(group);
      if (found !== undefined) return found;
    }
    return undefined;
  }
}

/** The pacer's time source (see clock.ts). */
export type PacerClock = Clock;

/** A key handed over with Pacer.ahead(): not due before `dueAt`; `deadline` orders it once due. */
interface Held {
  group: string;
  deadline: number;
  dueAt: number;
  seq: number;
}

/**
 * The share of the rate the look-ahead plans with: early grants start while the held renewals would fit
 * into 90 % of the rate by their due times, leaving room for due work that arrives meanwhile (a CA change,
 * renewals that are not handed over ahead) and for the issuance's own latency.
 */
export const PLANNED_RATE_FRACTION = 0.9;
/**
 * The time constant of the pacer's estimate of how fast keys are handed over ahead (an exponentially
 * decaying count). The held keys are only those already inside their look-ahead window, so a bunch is seen
 * as it enters: when keys enter faster than the planned rate grants, the window fills faster than it could
 * drain, and early grants start then rather than once the held ones alone no longer fit.
 */
export const INFLOW_TIME_CONSTANT_MS = 5000;
/** How often the pacer looks again at the renewals it holds while no other timer would wake it. */
export const AHEAD_CHECK_MS = 1000;
/** The look-ahead's demand check counts due times in one-second buckets, this many at most (an hour). */
const MAX_BUCKETS_SCANNED = 3600;

/** A token bucket that grants waiting keys in FairDeadlineQueue order, `ratePerSecond` on average. */
export class Pacer<K> {
  private readonly intervalMs: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly waiting = new FairDeadlineQueue<K>();
  private readonly granted = new Set<K>();
  /** Keys handed over ahead of their due time: one record and one heap entry each (lazy deletion). */
  private readonly held = new Map<K, Held>();
  private readonly heldByDue = new DeadlineHeap<K>();
  /** How many held keys fall due in each second (floor(dueAt / 1000)): the look-ahead's demand. */
  private readonly dueCounts = new Map<number, number>();
  private heldSeq = 0;
  private early = 0;
  /** Hand-overs of new held keys, an exponentially decaying count (per INFLOW_TIME_CONSTANT_MS). */
  private inflow = 0;
  private inflowAt: number;
  private timer?: unknown;
  private readonly clock: PacerClock;
  private readonly onGrant: (key: K) => void;

  constructor(
    ratePerSecond: number,
    onGrant: (key: K) => void,
    clock: PacerClock = realClock,
    burst?: number,
  ) {
    this.intervalMs = 1000 / ratePerSecond;
    this.burst = burst ?? Math.max(1, Math.ceil(ratePerSecond));
    this.tokens = this.burst;
    this.clock = clock;
    this.last = clock.now();
    this.inflowAt = this.last;
    this.onGrant = onGrant;
  }

  /** Keys waiting for a token (due work only; see `ahead` for the ones held before their due time). */
  get backlog(): number {
    return this.waiting.size;
  }

  /** Keys held ahead of their due time (handed over with ahead(), not yet due nor granted). */
  get aheadCount(): number {
    return this.held.size;
  }

  /** Grants made before the key's due time, since this pacer was made. */
  get earlyGrants(): number {
    return this.early;
  }

  /**
   * True when `key` may go now (it was granted, or a token is free and nobody waits); otherwise it waits
   * its turn (by `deadline` within `group`) and onGrant(key) is called when it comes.
   */
  admit(key: K, group: string, deadline: number): boolean {
    if (this.granted.delete(key)) return true;
    this.release(key);
    this.refill();
    if (this.waiting.size === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.waiting.push(key, group, deadline);
    this.schedule();
    return false;
  }

  /**
   * Work that is not due before `dueAt` but may go earlier. True when `key` was granted (early, or after it
   * fell due); otherwise the pacer holds it and calls onGrant(key) either when spare tokens are needed to
   * keep the held work on time (earliest due time first; never while due work waits) or, at the latest, when
   * it waits its turn as a due key (by `deadline` within `group`) from `dueAt` on. Handing a key over again
   * with the same times changes nothing; with other times it moves it.
   */
  ahead(key: K, group: string, deadline: number, dueAt: number): boolean {
    if (this.granted.delete(key)) return true;
    const now = this.clock.now();
    if (dueAt <= now) return this.admit(key, group, deadline);
    this.waiting.delete(key);
    const old = this.held.get(key);
    if (old && old.group === group && old.deadline === deadline && old.dueAt === dueAt) return false;
    if (!old) this.inflow = this.inflowNow(now) + 1;
    this.inflowAt = now;
    this.release(key);
    const entry = { group, deadline, dueAt, seq: this.heldSeq++ };
    this.held.set(key, entry);
    this.heldByDue.push({ key, deadline: dueAt, seq: entry.seq });
    const bucket = Math.floor(dueAt / 1000);
    this.dueCounts.set(bucket, (this.dueCounts.get(bucket) ?? 0) + 1);
    this.reschedule();
    return false;
  }

  /** The key no longer needs a turn (nothing to do, or deleted). */
  cancel(key: K): void {
    this.waiting.delete(key);
    this.granted.delete(key);
    this.release(key);
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
    this.last = now;
  }

  /** Forgets a held key (its heap entry is dropped when it surfaces). */
  private release(key: K): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    const bucket = Math.floor(h.dueAt / 1000);
    const n = (this.dueCounts.get(bucket) ?? 1) - 1;
    if (n > 0) this.dueCounts.set(bucket, n);
    else this.dueCounts.delete(bucket);
  }

  /** The held key with the earliest due time, stale heap entries dropped on the way. */
  private firstHeld(): { key: K; held: Held } | undefined {
    for (let top = this.heldByDue.peek(); top; top = this.heldByDue.peek()) {
      const h = this.held.get(top.key);
      if (h && h.seq === top.seq) return { key: top.key, held: h };
      this.heldByDue.pop();
    }
    return undefined;
  }

  /** The decayed hand-over count at `now` (a clock that went back decays nothing). */
  private inflowNow(now: number): number {
    return this.inflow * Math.exp(-Math.max(0, now - this.inflowAt) / INFLOW_TIME_CONSTANT_MS);
  }

  /**
   * Whether held work must start now to be on time: keys are being handed over faster than
   * PLANNED_RATE_FRACTION of the rate grants, or there is some due time T by which more held keys fall due
   * than the tokens there are now plus that share of the rate until T would grant. Each bucket is counted
   * as due at its start, the earliest its keys can be due.
   */
  private mustStartEarly(now: number): boolean {
    const total = this.held.size;
    const first = this.firstHeld();
    if (!first) return false;
    const perMs = PLANNED_RATE_FRACTION / this.intervalMs;
    // Hand-overs per ms, from the decayed count (its mean over the time constant).
    if (this.inflowNow(now) / INFLOW_TIME_CONSTANT_MS > perMs) return true;
    const from = Math.floor(first.held.dueAt / 1000);
    let due = 0;
    for (let b = from; b < from + MAX_BUCKETS_SCANNED; b++) {
      const capacity = this.tokens + Math.max(0, b * 1000 - now) * perMs;
      if (capacity >= total + 1) return false;
      due += this.dueCounts.get(b) ?? 0;
      if (due + 1 > capacity) return true;
      if (due >= total) return false;
    }
    return false;
  }

  /**
   * Re-arms the timer after a hand-over: the demand is looked at again as soon as a token is free, and the
   * held key may fall due before the armed wake-up.
   */
  private reschedule(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.refill();
    this.schedule(true);
  }

  private schedule(checkSoon = false): void {
    if (this.timer) return;
    const tokenWait = this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.intervalMs);
    let wait: number | undefined = this.waiting.size > 0 ? tokenWait : undefined;
    const first = this.firstHeld();
    if (first) {
      // Wake when the first held key falls due, and meanwhile to look at the demand again (once a second
      // while a token is free, else when the next one is).
      const dueWait = Math.max(0, first.held.dueAt - this.clock.now());
      const check = this.tokens >= 1 ? (checkSoon ? 0 : AHEAD_CHECK_MS) : tokenWait;
      wait = Math.min(wait ?? Infinity, dueWait, check);
    }
    if (wait === undefined) return;
    const t = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.dispatch();
    }, wait);
    t.unref?.();
    this.timer = t;
  }

  /**
   * Moves held keys that fell due among the waiting ones, hands out every free token to the next waiting
   * keys, and then, when none waits, to held keys (earliest due time first) while they must start early.
   */
  dispatch(): void {
    this.refill();
    const now = this.clock.now();
    for (let f = this.firstHeld(); f && f.held.dueAt <= now; f = this.firstHeld()) {
      this.heldByDue.pop();
      this.release(f.key);
      this.waiting.push(f.key, f.held.group, f.held.deadline);
    }
    while (this.tokens >= 1 && this.waiting.size > 0) {
      const key = this.waiting.pop();
      if (key === undefined) break;
      this.tokens -= 1;
      this.granted.add(key);
      this.onGrant(key);
    }
    while (this.tokens >= 1 && this.waiting.size === 0 && this.mustStartEarly(now)) {
      const f = this.firstHeld();
      if (!f) break;
      this.heldByDue.pop();
      this.release(f.key);
      this.tokens -= 1;
      this.early++;
      this.granted.add(f.key);
      this.onGrant(f.key);
    }
    this.schedule();
  }
}
