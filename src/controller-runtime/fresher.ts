import type { Meta } from './informer.ts';

/**
 * The newer of two versions of an object. After a write, the operator's cache holds the old version until
 * the watch delivers the new one; a reconcile in between must see its own write, or it would issue twice.
 * resourceVersions are opaque to clients, but on etcd-backed servers they are increasing integers; when
 * they are not numeric the cached (watched) copy wins.
 */
export function fresher<T extends Meta>(cached: T | undefined, written: T | undefined): T | undefined {
  if (!written) return cached;
  if (!cached) return written;
  const a = cached.metadata?.resourceVersion ?? '';
  const b = written.metadata?.resourceVersion ?? '';
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return cached;
  return BigInt(b) > BigInt(a) ? written : cached;
}
