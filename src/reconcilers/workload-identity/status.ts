import type { Condition, WorkloadIdentityStatus } from './types.ts';

/** The Ready condition, keeping lastTransitionTime when the status value did not change. */
export function readyCondition(
  previous: Condition[] | undefined,
  status: 'True' | 'False',
  reason: string,
  message: string,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const old = previous?.find((c) => c.type === 'Ready');
  const others = (previous ?? []).filter((c) => c.type !== 'Ready');
  const ready: Condition = {
    type: 'Ready',
    status,
    reason,
    message,
    lastTransitionTime: old && old.status === status ? old.lastTransitionTime : rfc3339(now),
    observedGeneration: generation,
  };
  return [...others, ready];
}

/**
 * Canonical JSON of a status with keys sorted, so equal content compares equal. Sorted by code unit, not
 * localeCompare (ICU collation was a visible share of a reconcile; any fixed order serves).
 */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

export function statusEqual(a: WorkloadIdentityStatus | undefined, b: WorkloadIdentityStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

/** Kubernetes timestamps carry whole seconds. */
export const rfc3339 = (d: Date): string =>
  new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
