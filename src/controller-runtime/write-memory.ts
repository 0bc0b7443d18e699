// The operator's own latest writes, newer than the caches until the watch catches up (see fresher.ts),
// and never newer than a deletion the watch has already delivered; and which watch events are the echo of
// those writes.
//
// The echo can arrive before the write's own HTTP response (the API server sends the watch event and the
// answer independently). So a write is marked as in flight before it is sent (`sending`); a watch event for
// that key arriving meanwhile is held, and when the write's answer comes (`wrote`) it is compared with it:
// the event of the very version the write produced (same resourceVersion) is the echo and is dropped,
// anything else (someone else's change before or after ours) is handed back as a change (`onChange`), as
// is everything held when the write fails (`failed`). A foreign change is never lost: at worst an echo costs
// one more reconcile (a key holds at most MAX_HELD events; later ones are passed on at once).
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

/** Watch events held per key while its write is in flight; more are passed on at once, not held. */
export const MAX_HELD = 8;

/** What a watch event is: the echo of an own write, held until the write in flight answers, or a change. */
export type Seen = 'echo' | 'held' | 'change';

interface Hold<T> {
  /** Writes of the key in flight. */
  sending: number;
  /** Events that arrived meanwhile, in order. */
  held: T[];
  /** The resourceVersions the key's writes produced while the hold was open. */
  results: bigint[];
}

const rv = (o: Meta | undefined): bigint | undefined => {
  const v = o?.metadata?.resourceVersion ?? '';
  return /^\d+$/.test(v) ? BigInt(v) : undefined;
};

export class WriteMemory<T extends Meta> {
  private readonly written = new Map<string, T>();
  /** Deleted objects' last resourceVersion, and when the deletion was seen. */
  private readonly tombstones = new Map<string, { rv: bigint | undefined; at: number }>();
  private readonly holds = new Map<string, Hold<T>>();
  private readonly cache: Lookup<T>;
  private readonly clock: () => number;
  private readonly onChange: (key: string, obj: T) => void;

  /**
   * `onChange` gets each held event that turned out not to be the echo (handle it as a change seen now).
   */
  constructor(
    cache: Lookup<T>,
    clock: () => number = () => performance.now(),
    onChange: (key: string, obj: T) => void = () => undefined,
  ) {
    this.cache = cache;
    this.clock = clock;
    this.onChange = onChange;
  }

  get size(): number {
    return this.written.size;
  }

  /** Keys with a write in flight. */
  get inFlight(): number {
    return this.holds.size;
  }

  /**
   * A write of `key` is about to be sent: its watch events are held until the write answers (`wrote`) or
   * fails (`failed`). Call exactly one of those for every `sending`.
   */
  sending(key: string): void {
    const hold = this.holds.get(key);
    if (hold) hold.sending++;
    else this.holds.set(key, { sending: 1, held: [], results: [] });
  }

  /** The write in flight of `key` failed (no answer, or an error): what was held is a change. */
  failed(key: string): void {
    this.settle(key, undefined);
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
    } else if (fresher(this.cache.get(key), obj) === obj) this.written.set(key, withoutManagedFields(obj));
    else this.written.delete(key);
    this.settle(key, version);
  }

  /** One write of `key` answered (with the version it produced) or failed; the last one releases the hold. */
  private settle(key: string, version: bigint | undefined): void {
    const hold = this.holds.get(key);
    if (!hold) return;
    if (version !== undefined) hold.results.push(version);
    if (--hold.sending > 0) return;
    this.holds.delete(key);
    for (const obj of hold.held) {
      const v = rv(obj);
      if (v === undefined || !hold.results.includes(v)) this.onChange(key, obj);
    }
  }

  /**
   * The watch delivered a change: a remembered write it has caught up with is dropped. 'echo' when the
   * change is that write itself (same resourceVersion), which the reconcile that wrote it has already acted
   * on; 'held' when a write of the key is in flight (it is judged when the write answers, see the top of
   * this file); else 'change'.
   */
  seen(key: string, obj: T): Seen {
    this.tombstones.delete(key);
    const mine = this.written.get(key);
    if (mine && fresher(obj, mine) !== mine) {
      this.written.delete(key);
      const version = rv(obj);
      if (version !== undefined && version === rv(mine)) return 'echo';
    }
    const hold = this.holds.get(key);
    if (hold && hold.held.length < MAX_HELD) {
      hold.held.push(obj);
      return 'held';
    }
    return 'change';
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
