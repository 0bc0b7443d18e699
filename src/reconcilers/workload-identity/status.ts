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
 * Canonical JSON of a status with keys sorted (by code unit, not localeCompare: ICU collation was a visible
 * share of a reconcile; any fixed order serves), so equal content compares equal. Written directly: the
 * previous JSON.stringify replacer built a sorted copy of every object (Object.entries, filter, sort,
 * Object.fromEntries) before serialising it, ~2 % of the operator's sampled CPU at the 1,000-identity wave
 * (`canonical` and its replacer, hack/profile-wave.ts --cpu-prof), run twice per reconcile. The output is
 * what JSON.stringify gives for the same value with its object keys sorted: undefined members left out,
 * undefined, functions and symbols in arrays as null, toJSON used, non-finite numbers as null.
 */
export function canonical(value: unknown): string {
  return canonicalPart(value) ?? 'null';
}

function canonicalPart(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      const withJson = value as { toJSON?: unknown };
      if (typeof withJson.toJSON === 'function')
        return canonicalPart((withJson.toJSON as (key: string) => unknown).call(value, ''));
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++)
          out += (i === 0 ? '' : ',') + (canonicalPart(value[i] as unknown) ?? 'null');
        return out + ']';
      }
      const record = value as Record<string, unknown>;
      let out = '{';
      for (const key of Object.keys(record).sort()) {
        const part = canonicalPart(record[key]);
        if (part === undefined) continue;
        out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + part;
      }
      return out + '}';
    }
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    default:
      return undefined;
  }
}

export function statusEqual(a: WorkloadIdentityStatus | undefined, b: WorkloadIdentityStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

/**
 * Kubernetes timestamps carry whole seconds. The milliseconds are cut from the ISO string (the same as
 * rounding the time down first, before 1970 too) instead of building a second Date; a year past 9999 (ISO
 * form +YYYYYY-…) takes the long way.
 */
export const rfc3339 = (d: Date): string => {
  const iso = d.toISOString();
  return iso.length === 24
    ? `${iso.slice(0, 19)}Z`
    : new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
};
