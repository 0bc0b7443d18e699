// What the caches keep. The operator holds every WorkloadIdentity and every managed Secret for its whole
// life, so what each copy carries decides its memory at 10,000 identities (measured by `npm run bench`).
import type * as k8s from '@kubernetes/client-node';

/**
 * Drops metadata.managedFields: server-side-apply bookkeeping the operator never reads, and in a heap
 * snapshot with 10,000 identities the largest share of the cached objects.
 */
export function withoutManagedFields<T extends { metadata?: object }>(obj: T): T {
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (meta?.managedFields) delete meta.managedFields;
  return obj;
}

/**
 * Shares one copy of each trust bundle among the Secrets that hold it. Every managed Secret's ca.crt is
 * the same text (one bundle per CA, a few during a rotation), but each arrives from the API server as its
 * own string. Only the most recent few bundles are remembered; an older one is simply not shared.
 */
export class BundleInterner {
  private readonly seen = new Map<string, string>();
  private readonly max: number;

  constructor(max = 8) {
    this.max = max;
  }

  get size(): number {
    return this.seen.size;
  }

  secret = (secret: k8s.V1Secret): k8s.V1Secret => {
    withoutManagedFields(secret);
    withOnlySvidData(secret);
    const bundle = secret.data?.['ca.crt'];
    if (!bundle || !secret.data) return secret;
    const shared = this.seen.get(bundle);
    if (shared !== undefined) {
      secret.data['ca.crt'] = shared;
      return secret;
    }
    this.seen.set(bundle, bundle);
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value as string);
    return secret;
  };
}

/** The data keys an SVID Secret holds; nothing else in a managed Secret is kept in memory. */
export const SVID_DATA_KEYS: readonly string[] = ['tls.crt', 'tls.key', 'ca.crt'];

const extraKeys = new WeakMap<object, number>();

/**
 * Keeps only the SVID's data keys (what verification needs) and records how many others there were. A
 * tenant who pads its managed Secrets with extra keys (up to the API server's 1 MiB per Secret) cannot
 * make the operator hold them; the count marks the Secret as tampered with.
 */
export function withOnlySvidData(secret: k8s.V1Secret): k8s.V1Secret {
  const data = secret.data;
  if (!data) return secret;
  const kept = Object.entries(data).filter(([key]) => SVID_DATA_KEYS.includes(key));
  const extra = Object.keys(data).length - kept.length;
  if (extra > 0) {
    secret.data = Object.fromEntries(kept);
    extraKeys.set(secret, extra);
  }
  return secret;
}

/** How many data keys besides the SVID's a cached Secret had (0 for one never trimmed). */
export function extraDataKeys(secret: k8s.V1Secret): number {
  return extraKeys.get(secret) ?? 0;
}
