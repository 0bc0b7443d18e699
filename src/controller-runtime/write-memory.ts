// The operator's own latest writes, newer than the caches until the watch catches up (see fresher.ts),
// and never newer than a deletion the watch has already delivered.
//
// Without the deletion check, a write whose response arrived after the watch had delivered the object's
// deletion was remembered (the cache no longer held the object, so the write looked newer) and answered
// every later read: a deleted Secret looked present (so it was never re-created) and a deleted identity
// looked alive (so its Secret was issued again).
import { fresher } from './fresher.ts';
import type { Meta } from './informer.ts';
import { withoutManagedFields } from './managed-fields.ts';

export interface Lookup<T> {
  get(key: string): T | undefined;
}

/** How long a deletion is remembered: far longer than any write's round trip. */
const TOMBSTONE_MS = 5 * 60_000;

const rv = (o: Meta | undefined): bigint | undefined => {
  const v = o?.metadata?.resourceVersion ?? '';
  return /^\d+$/.test(v) ? BigInt(v) : undefined;
};

export class WriteMemory<T extends Meta> {
  private readonly written = new Map<string, T>();
  /** Deleted objects' last resourceVersion, and when the deletion was seen. */
  private readonly tombstones = new Map<string, { rv: bigint | undefined; at: number }>();
  private readonly cache: Lookup<T>;
  private readonly clock: () => number;

  constructor(cache: Lookup<T>, clock: () => number = () => performance.now()) {
    this.cache = cache;
    this.clock = clock;
  }

  get size(): number {
    return this.written.size;
  }

  /** The newest known version: the cached one, or this process's own later write. */
  get(key: string): T | undefined {
    return fresher(this.cache.get(key), this.written.get(key));
  }

  /**
   * Keeps a copy of a write until the watch delivers it, unless it already has (the watch event can arrive
   * before the write's own response) or the watch has delivered a deletion at least as new as the write.
   */
  wrote(key: string, obj: T): void {
    const tomb = this.tombstones.get(key);
    const version = rv(obj);
    if (tomb && (tomb.rv === undefined || version === undefined || version <= tomb.rv)) {
      this.written.delete(key);
      return;
    }
    if (fresher(this.cache.get(key), obj) === obj) this.written.set(key, withoutManagedFields(obj));
    else this.written.delete(key);
  }

  /**
   * The watch delivered a change: a remembered write it has caught up with is dropped. True when the change
   * is that write itself (same resourceVersion): the echo of this process's own write, which the reconcile
   * that wrote it has already acted on.
   */
  seen(key: string, obj: T): boolean {
    this.tombstones.delete(key);
    const mine = this.written.get(key);
    if (!mine || fresher(obj, mine) === mine) return false;
    this.written.delete(key);
    const version = rv(obj);
    return version !== undefined && version === rv(mine);
  }

  /** The watch delivered a deletion: nothing written before it may answer for the object again. */
  deleted(key: string, obj: T | undefined): void {
    const now = this.clock();
    for (const [k, t] of this.tombstones) {
      if (now - t.at < TOMBSTONE_MS) break;
      this.tombstones.delete(k);
    }
    this.tombstones.delete(key);
    this.tombstones.set(key, { rv: rv(obj), at: now });
    const mine = this.written.get(key);
    const deletedAt = rv(obj);
    const mineAt = rv(mine);
    if (mine && (deletedAt === undefined || mineAt === undefined || mineAt <= deletedAt)) {
      this.written.delete(key);
    }
  }

  /** Forgets a remembered write (e.g. after a 409: the next attempt must read again). */
  forget(key: string): void {
    this.written.delete(key);
  }
}
