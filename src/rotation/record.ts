// How the rotation state is kept in the API: a Secret next to the CA Secret, `<ca-secret>-rotation`.
//
// Why a Secret of its own, and not an annotation on the CA Secret or a ConfigMap:
//  - the CA Secret belongs to the admin (kubectl apply / GitOps replace it, and annotations the operator
//    added there are dropped by a replace), and after a change it no longer holds the previous CA, which
//    Preparing still signs with: that CA (key included) must be kept somewhere that survives a restart or
//    a leader change, and a key belongs in a Secret, in the CA's own namespace, under the same access rules;
//  - the key is kept only while Preparing needs it and removed when signing switches;
//  - the phase is a label, so `kubectl get secret -n <ns> -L identity.svid.dev/ca-rotation-phase` shows it,
//    and the state is readable JSON in an annotation (no base64).
import { PHASES, type RotationPhase, type RotationState } from './phases.ts';

export const STATE_ANNOTATION = 'identity.svid.dev/ca-rotation-state';
export const PHASE_LABEL = 'identity.svid.dev/ca-rotation-phase';
/** Data keys: roots still retained; the signing CA's roots; while Preparing the signing CA itself. */
export const RETAINED_KEY = 'retained.crt';
export const SIGNING_ROOTS_KEY = 'signing-roots.crt';
export const SIGNING_CERT_KEY = 'signing.crt';
export const SIGNING_KEY_KEY = 'signing.key';
export const SIGNING_BUNDLE_KEY = 'signing-ca.crt';

export const rotationSecretName = (caSecretName: string) => `${caSecretName}-rotation`;

export class RotationStateError extends Error {}

const MAX_JSON = 4096;
const FINGERPRINT = /^[0-9a-f]{64}$/;

/** The annotation's JSON: everything but the PEM, which lives in data. */
export function serializeState(state: RotationState): string {
  const { retainedRootsPem: _, ...rest } = state;
  return JSON.stringify(rest);
}

/**
 * Parses the annotation written by serializeState, strictly: anything else (a hand edit gone wrong, a
 * truncated value) is refused with what is wrong, never half-read.
 */
export function parseState(json: string, retainedRootsPem: string): RotationState {
  if (json.length > MAX_JSON) throw new RotationStateError(`the state is longer than ${MAX_JSON} characters`);
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new RotationStateError('the state is not valid JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new RotationStateError('the state is not an object');
  const o = v as Record<string, unknown>;
  const allowed = new Set([
    'phase',
    'signing',
    'target',
    'since',
    'bundlesPublishedAt',
    'oldSignedUntil',
    'retireAt',
  ]);
  for (const k of Object.keys(o))
    if (!allowed.has(k)) throw new RotationStateError(`unknown field ${JSON.stringify(k).slice(0, 40)}`);
  if (typeof o.phase !== 'string' || !PHASES.includes(o.phase as RotationPhase)) {
    throw new RotationStateError(`phase must be one of ${PHASES.join(', ')}`);
  }
  for (const k of ['signing', 'target'] as const) {
    if (typeof o[k] !== 'string' || !FINGERPRINT.test(o[k])) {
      throw new RotationStateError(`${k} must be a SHA-256 fingerprint (64 lowercase hex digits)`);
    }
  }
  const time = (k: string, required: boolean): string | undefined => {
    const t = o[k];
    if (t === undefined && !required) return undefined;
    if (
      typeof t !== 'string' ||
      !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(t) ||
      Number.isNaN(Date.parse(t)) ||
      // A day the month does not have (Date.parse rolls it over into the next month).
      new Date(t).toISOString().slice(0, 19) !== t.slice(0, 19)
    ) {
      throw new RotationStateError(`${k} must be an RFC 3339 UTC time`);
    }
    return t;
  };
  const state: RotationState = {
    phase: o.phase as RotationPhase,
    signing: o.signing as string,
    target: o.target as string,
    retainedRootsPem,
    since: time('since', true) as string,
  };
  const published = time('bundlesPublishedAt', false);
  const until = time('oldSignedUntil', false);
  const retireAt = time('retireAt', state.phase === 'Retiring');
  if (published) state.bundlesPublishedAt = published;
  if (until) state.oldSignedUntil = until;
  if (retireAt) state.retireAt = retireAt;
  if (state.phase !== 'Preparing' && state.signing !== state.target) {
    throw new RotationStateError(`signing and target differ outside Preparing (phase ${state.phase})`);
  }
  return state;
}
