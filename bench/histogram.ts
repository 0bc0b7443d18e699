// Quantiles of a Prometheus histogram between two scrapes of the text exposition: the buckets' counts are
// summed over the label sets that contain `labels`, the earlier scrape is subtracted, and the quantile is
// the upper bound of the first bucket that reaches it (as coarse as the buckets, never interpolated).

/** Cumulative bucket counts by upper bound (le), summed over matching label sets. */
export function histogramBuckets(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): Map<number, number> {
  const out = new Map<number, number>();
  const prefix = `${name}_bucket{`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const m = /^[a-z_]+\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labelText = m[1] ?? '';
    if (!Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue;
    const le = /(?:^|,)le="([^"]+)"/.exec(labelText)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    out.set(bound, (out.get(bound) ?? 0) + Number(m[2]));
  }
  return out;
}

/** The q-quantile's bucket upper bound of the observations between `before` and `after`; null if none. */
export function quantileBetween(
  before: Map<number, number>,
  after: Map<number, number>,
  q: number,
): number | null {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total <= 0) return null;
  const rank = q * total;
  for (const b of bounds) {
    if ((after.get(b) ?? 0) - (before.get(b) ?? 0) >= rank) return b;
  }
  return Infinity;
}

/** The number of observations between two scrapes. */
export function countBetween(before: Map<number, number>, after: Map<number, number>): number {
  return (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
}
