// `svidctl status`: one WorkloadIdentity as a person wants to see it, from what the API server holds (the
// identity, its Secret, its recent events). Pure formatting here; the reads are in identity-commands.ts.
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { profile } from '../pki/index.ts';
import { formatDuration } from '../renewal/index.ts';
import { ANNOTATION_RENEW_REQUEST, pendingRenewRequest } from '../controller/renew-request.ts';
import type { WorkloadIdentity } from '../controller/types.ts';

/** How many of the identity's most recent events `status` shows. */
export const EVENTS_SHOWN = 5;

// C0/C1 controls, line separators and bidi overrides: shown escaped so API text cannot rewrite the terminal.
function unprintable(c: string): boolean {
  const n = c.charCodeAt(0);
  return (
    n < 0x20 ||
    (n >= 0x7f && n <= 0x9f) ||
    n === 0x2028 ||
    n === 0x2029 ||
    (n >= 0x202a && n <= 0x202e) ||
    (n >= 0x2066 && n <= 0x2069)
  );
}

/** Text from the API (user-written messages, annotations) on one line and bounded, control characters shown escaped. */
function clean(text: unknown, max = 300): string {
  const s = typeof text === 'string' ? text : text === undefined ? '' : JSON.stringify(text);
  const oneLine = [...s]
    .map((c) => (unprintable(c) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c))
    .join('');
  return oneLine.length > max ? `${oneLine.slice(0, max)}…` : oneLine;
}

function when(iso: string | undefined, now: Date): string {
  if (!iso) return '(none)';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return clean(iso);
  const s = Math.round((t - now.getTime()) / 1000);
  return `${new Date(t).toISOString().replace('.000Z', 'Z')} (${s >= 0 ? `in ${formatDuration(s)}` : `${formatDuration(-s)} ago`})`;
}

const eventTime = (e: k8s.CoreV1Event): number =>
  Date.parse(
    String(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? ''),
  ) || 0;

/** What status could read: the object, or why not (absent, or e.g. HTTP 403). */
export type Read<T> = { ok: true; value: T } | { ok: false; why: string };

/** What the Secret holds, in a line or two; never any key material. */
function describeSecret(read: Read<k8s.V1Secret | undefined>, wi: WorkloadIdentity, now: Date): string[] {
  const name = `${wi.metadata.namespace}/${clean(wi.spec.secretName)}`;
  if (!read.ok) return [`Secret:        ${name} not readable (${clean(read.why, 200)})`];
  const secret = read.value;
  if (!secret) return [`Secret:        ${name} does not exist (yet)`];
  const crt = secret.data?.['tls.crt'];
  if (!crt) return [`Secret:        ${name} has no tls.crt`];
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(Buffer.from(crt, 'base64'));
  } catch {
    return [`Secret:        ${name} holds a tls.crt that is not a certificate`];
  }
  const serial = leaf.serialNumber.toLowerCase();
  const matches = serial === wi.status?.serialNumber;
  const id = profile(leaf).uris.join(', ') || '(no URI SAN)';
  return [
    `Secret:        ${name}: serial ${serial}${wi.status?.serialNumber ? (matches ? ' (as on status)' : ` (status says ${clean(wi.status.serialNumber, 64)})`) : ''}`,
    `               ${clean(id)}, valid until ${when(new Date(leaf.validTo).toISOString(), now)}`,
  ];
}

export function formatStatus(
  wi: WorkloadIdentity,
  secret: Read<k8s.V1Secret | undefined>,
  events: Read<k8s.CoreV1Event[]>,
  now: Date,
): string[] {
  const st = wi.status ?? {};
  const lines = [
    `Name:          ${wi.metadata.namespace}/${wi.metadata.name}`,
    `SPIFFE ID:     ${clean(st.spiffeID) || '(not issued yet)'}`,
  ];
  const ready = st.conditions?.find((c) => c.type === 'Ready');
  lines.push(
    ready
      ? `Ready:         ${clean(ready.status, 16)} (${clean(ready.reason, 64)}) since ${when(ready.lastTransitionTime, now)}`
      : 'Ready:         Unknown (the operator has not reported yet)',
  );
  if (ready?.message) lines.push(`               ${clean(ready.message, 1000)}`);
  lines.push(
    `Serial:        ${clean(st.serialNumber, 64) || '(none)'}`,
    `Not before:    ${when(st.notBefore, now)}`,
    `Not after:     ${when(st.notAfter, now)}`,
    `Renewal:       ${when(st.renewalTime, now)}`,
    `Revision:      ${st.revision ?? 0}`,
  );
  if (st.failedIssuanceAttempts)
    lines.push(`Failures:      ${st.failedIssuanceAttempts}, last at ${when(st.lastFailureTime, now)}`);
  const pending = pendingRenewRequest(wi);
  if (pending !== undefined)
    lines.push(`Renew request: ${clean(pending, 64)} (pending: the operator has not re-issued yet)`);
  else if (st.lastRenewRequest) lines.push(`Renew request: ${clean(st.lastRenewRequest, 71)} (done)`);
  lines.push(...describeSecret(secret, wi, now));
  if (!events.ok) {
    lines.push(`Events:        not readable (${clean(events.why, 200)})`);
    return lines;
  }
  const recent = [...events.value].sort((a, b) => eventTime(a) - eventTime(b)).slice(-EVENTS_SHOWN);
  lines.push(`Events:        ${recent.length === 0 ? '(none)' : `last ${recent.length}`}`);
  for (const e of recent) {
    const t = eventTime(e);
    lines.push(
      `  ${t ? new Date(t).toISOString().replace('.000Z', 'Z') : '(no time)'}  ${clean(e.type, 16)}  ${clean(e.reason, 64)}${(e.count ?? 1) > 1 ? ` (x${e.count})` : ''}: ${clean(e.message, 500)}`,
    );
  }
  return lines;
}

export { ANNOTATION_RENEW_REQUEST };
