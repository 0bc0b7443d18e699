// Generic pacing machinery: which waiting key goes next (FairDeadlineQueue, no I/O, no clock) and a token
// bucket that hands out grants without anyone waiting on it (Pacer). A caller asks `admit(key)`; when no
// token is free the key is remembered and the caller returns at once (no worker is held), and `onGrant(key)`
// is called when its turn comes, so the caller can run it again.
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

/** A token bucket that grants waiting keys in FairDeadlineQueue order, `ratePerSecond` on average. */
export class Pacer<K> {
  private readonly intervalMs: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly waiting = new FairDeadlineQueue<K>();
  private readonly granted = new Set<K>();
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
    this.onGrant = onGrant;
  }

  /** Keys waiting for a token. */
  get backlog(): number {
    return this.waiting.size;
  }

  /**
   * True when `key` may go now (it was granted, or a token is free and nobody waits); otherwise it waits
   * its turn (by `deadline` within `group`) and onGrant(key) is called when it comes.
   */
  admit(key: K, group: string, deadline: number): boolean {
    if (this.granted.delete(key)) return true;
    this.refill();
    if (this.waiting.size === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.waiting.push(key, group, deadline);
    this.schedule();
    return false;
  }

  /** The key no longer needs a turn (nothing to do, or deleted). */
  cancel(key: K): void {
    this.waiting.delete(key);
    this.granted.delete(key);
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

  private schedule(): void {
    if (this.timer || this.waiting.size === 0) return;
    const wait = this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.intervalMs);
    const t = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.dispatch();
    }, wait);
    t.unref?.();
    this.timer = t;
  }

  /** Hands out every free token to the next waiting keys. */
  dispatch(): void {
    this.refill();
    while (this.tokens >= 1 && this.waiting.size > 0) {
      const key = this.waiting.pop();
      if (key === undefined) break;
      this.tokens -= 1;
      this.granted.add(key);
      this.onGrant(key);
    }
    this.schedule();
  }
}
