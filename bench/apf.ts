// API Priority and Fairness as the API server applied it, from its own /metrics: which flow schema and
// priority level served the non-exempt requests (in the bench only the operator's ServiceAccount), how
// many seats those levels have, and whether any request waited in a queue or was rejected.
import type { ControlPlane } from '../hack/lib/control-plane.ts';

export interface ApfLevel {
  flowSchema: string;
  priorityLevel: string;
  dispatched: number;
  rejected: number;
  /** Seats the priority level has (apiserver_flowcontrol_nominal_limit_seats). */
  nominalSeats: number | null;
  /** Requests that waited over 5 ms for a seat (request_wait_duration count minus its le="0.005" bucket). */
  waitedOver5ms: number | null;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseSamples(text: string, names: string[]): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || !names.includes(m[1] ?? '')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ''] = l[2] ?? '';
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

/** The API server's flow-control counters, by (flow schema, priority level), exempt ones left out. */
export async function apfLevels(cp: ControlPlane): Promise<ApfLevel[]> {
  const text = await cp.kubectlRun(['get', '--raw', '/metrics']);
  const samples = parseSamples(text, [
    'apiserver_flowcontrol_dispatched_requests_total',
    'apiserver_flowcontrol_rejected_requests_total',
    'apiserver_flowcontrol_nominal_limit_seats',
    'apiserver_flowcontrol_request_wait_duration_seconds_bucket',
    'apiserver_flowcontrol_request_wait_duration_seconds_count',
  ]);
  const levels = new Map<string, ApfLevel>();
  const level = (s: Sample) => {
    const flowSchema = s.labels.flow_schema ?? '';
    const priorityLevel = s.labels.priority_level ?? '';
    const key = `${flowSchema}/${priorityLevel}`;
    let l = levels.get(key);
    if (!l) {
      l = { flowSchema, priorityLevel, dispatched: 0, rejected: 0, nominalSeats: null, waitedOver5ms: null };
      levels.set(key, l);
    }
    return l;
  };
  const seats = new Map<string, number>();
  const waited = new Map<string, number>();
  const within0 = new Map<string, number>();
  for (const s of samples) {
    if (s.name === 'apiserver_flowcontrol_nominal_limit_seats') {
      seats.set(s.labels.priority_level ?? '', s.value);
      continue;
    }
    if (s.labels.priority_level === 'exempt') continue;
    const key = `${s.labels.flow_schema}/${s.labels.priority_level}`;
    if (s.name === 'apiserver_flowcontrol_dispatched_requests_total') level(s).dispatched += s.value;
    else if (s.name === 'apiserver_flowcontrol_rejected_requests_total') level(s).rejected += s.value;
    else if (s.name === 'apiserver_flowcontrol_request_wait_duration_seconds_count')
      waited.set(key, (waited.get(key) ?? 0) + s.value);
    else if (s.labels.le === '0.005') within0.set(key, (within0.get(key) ?? 0) + s.value);
  }
  for (const [key, l] of levels) {
    l.nominalSeats = seats.get(l.priorityLevel) ?? null;
    const total = waited.get(key);
    const zeroWait = within0.get(key);
    // Without an le="0.005" bucket the requests that waited cannot be told apart.
    l.waitedOver5ms = total === undefined || zeroWait === undefined ? null : total - zeroWait;
  }
  return [...levels.values()].filter((l) => l.dispatched > 0 || l.rejected > 0);
}
