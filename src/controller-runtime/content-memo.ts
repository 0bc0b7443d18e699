// Remembers a value computed from an object's content, per object, for as long as the content stays the
// same: a lookup with another digest misses, so content changed by anyone (another client, a restore, a
// tamperer) is always computed again, never answered from memory. One entry per key (a newer digest
// replaces the older), and at most `max` keys: the least recently used is dropped first, so the memory is
// bounded whatever the keys are. Pure and generic: the reconcilers decide what the value is.
import { createHash } from 'node:crypto';

/**
 * SHA-256 over the parts, each prefixed with its length (so ['ab', 'c'] and ['a', 'bc'] differ, and an
 * absent part differs from an empty one). The 32 bytes as a 32-character Latin-1 string: digests are only
 * compared, never shown, and one is held per remembered object (48 bytes in V8's heap against 64 for the
 * same digest in base64).
 */
export function contentDigest(parts: readonly (string | undefined)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    hash.update(part === undefined ? '-1:' : `${part.length}:`);
    if (part !== undefined) hash.update(part);
  }
  return hash.digest('binary'); // Latin-1
}

export class ContentMemo<V> {
  private readonly entries = new Map<string, { digest: string; value: V }>();
  private readonly max: number;
  hits = 0;
  misses = 0;

  constructor(max: number) {
    if (!(max >= 1) || !Number.isInteger(max)) throw new Error(`max must be a positive integer, not ${max}`);
    this.max = max;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value remembered for `key` when it was computed from content with this digest. */
  get(key: string, digest: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry || entry.digest !== digest) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: string, digest: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { digest, value });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** The value for `key` and `digest`, computed (and remembered) on a miss. */
  getOrCompute(key: string, digest: string, compute: () => V): V {
    const known = this.get(key, digest);
    if (known !== undefined) return known;
    const value = compute();
    this.set(key, digest, value);
    return value;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}
