// `svidctl renew` (like cert-manager's `cmctl renew`): a user asks for a new SVID now by setting an
// annotation on the WorkloadIdentity. Each distinct value is honoured once: the operator records the value
// it acted on in status.lastRenewRequest, so neither a restart nor a resync re-issues for the same request.
import { createHash } from 'node:crypto';
import { GROUP, type WorkloadIdentity } from './types.ts';

export const ANNOTATION_RENEW_REQUEST = `${GROUP}/renew-request`;

/** Values longer than this are recorded by their SHA-256, so a huge annotation cannot bloat the status. */
const MAX_RECORDED = 64;

/** What status.lastRenewRequest holds for an annotation value: the value, or sha256:<hex> when long. */
export function renewRequestToken(value: string): string {
  return value.length <= MAX_RECORDED ? value : `sha256:${createHash('sha256').update(value).digest('hex')}`;
}

/** The annotation's value when it asks for a re-issue not yet honoured; undefined otherwise. */
export function pendingRenewRequest(wi: WorkloadIdentity): string | undefined {
  const value = wi.metadata.annotations?.[ANNOTATION_RENEW_REQUEST];
  if (value === undefined || value.trim() === '') return undefined;
  return renewRequestToken(value) === wi.status?.lastRenewRequest ? undefined : value;
}

/** What to record after an issuance: the request it satisfied (any issuance does), else the old record. */
export function handledRenewRequest(wi: WorkloadIdentity): string | undefined {
  const value = wi.metadata.annotations?.[ANNOTATION_RENEW_REQUEST];
  return value === undefined || value.trim() === '' ? wi.status?.lastRenewRequest : renewRequestToken(value);
}
