// The CA rotation as a state machine, decided without I/O (the driver in controller/ca-rotation.ts reads the
// facts from the caches, persists each new state, and only then acts on it).
//
//   Stable ──CA Secret changes──▶ Preparing ──every bundle has old+new, + delay──▶ Switching
//      ▲                                                                              │
//      └──── old root dropped ◀── Retiring (until the last old SVID expired + delay) ◀┘ every SVID re-issued
//
// Preparing: every trust bundle gets the new CA's roots next to the old ones, while SVIDs are still signed by
//   the old CA. Nobody can meet an SVID of the new CA before its bundle trusts it.
// Switching: the propagation delay has passed since the last bundle was written (kubelet has delivered it
//   everywhere); signing moves to the new CA and SVIDs are re-issued at the paced rate.
// Retiring: no Secret holds an old SVID any more; the old roots stay until the last SVID the old CA signed
//   has expired, plus the delay for kubelet to deliver its replacement.

export type RotationPhase = 'Stable' | 'Preparing' | 'Switching' | 'Retiring';
export const PHASES: readonly RotationPhase[] = ['Stable', 'Preparing', 'Switching', 'Retiring'];

export interface RotationState {
  phase: RotationPhase;
  /** SHA-256 fingerprint of the CA that signs SVIDs now. */
  signing: string;
  /** Fingerprint of the CA in the CA Secret: the one rotation converges to (equal to signing once switched). */
  target: string;
  /** Roots of earlier CAs still kept in every bundle, PEM (empty when Stable). */
  retainedRootsPem: string;
  /** When the current phase began (RFC 3339). */
  since: string;
  /** Preparing: when every bundle was first seen holding the new roots. */
  bundlesPublishedAt?: string;
  /** Switching/Retiring: the latest notAfter seen among SVIDs of the old CA(s). */
  oldSignedUntil?: string;
  /** Retiring: when the old roots leave the bundles. */
  retireAt?: string;
}

/** What the caches say about the managed Secrets (only those of identities the operator keeps Ready). */
export interface RotationFacts {
  /** Secrets considered. */
  secrets: number;
  /** How many hold exactly the current trust bundle. */
  withCurrentBundle: number;
  /** How many hold an SVID not signed by the signing CA. */
  oldSigned: number;
  /** The latest notAfter among those. */
  oldSignedUntil?: Date;
}

const iso = (d: Date) => d.toISOString();
const at = (s: string | undefined) => (s ? Date.parse(s) : NaN);

/** The state of an operator that has never rotated: the CA in the Secret signs. */
export function initialState(fingerprint: string, now: Date): RotationState {
  return {
    phase: 'Stable',
    signing: fingerprint,
    target: fingerprint,
    retainedRootsPem: '',
    since: iso(now),
  };
}

/**
 * The CA Secret now holds `target`. Unchanged target: the same state. Otherwise a new Preparing phase in
 * which the CA that signs now keeps signing, and its roots (plus any still retained from an earlier
 * rotation) stay in the bundles. A target that never signed (replaced again while Preparing) is dropped.
 */
export function caChanged(
  state: RotationState,
  target: string,
  signingRootsPem: string,
  targetRootsPem: string,
  now: Date,
): RotationState {
  if (target === state.target) return state;
  if (target === state.signing) {
    // Back to the CA that still signs (a Preparing rotation undone): the target that never signed leaves;
    // roots an earlier, unfinished rotation still kept stay until their SVIDs are gone.
    const retained = uniqueCerts(state.retainedRootsPem, signingRootsPem);
    if (!retained) return initialState(target, now);
    return {
      phase: 'Switching',
      signing: target,
      target,
      retainedRootsPem: retained,
      since: iso(now),
      ...(state.oldSignedUntil ? { oldSignedUntil: state.oldSignedUntil } : {}),
    };
  }
  const retained = uniqueCerts(state.retainedRootsPem + signingRootsPem, targetRootsPem);
  return { phase: 'Preparing', signing: state.signing, target, retainedRootsPem: retained, since: iso(now) };
}

/** The next state given what the caches show now; the same object when nothing changes. */
export function advance(
  state: RotationState,
  facts: RotationFacts,
  now: Date,
  propagationDelayMs: number,
): RotationState {
  const t = now.getTime();
  switch (state.phase) {
    case 'Stable':
      return state;
    case 'Preparing': {
      const published = at(state.bundlesPublishedAt);
      if (Number.isNaN(published)) {
        if (facts.withCurrentBundle < facts.secrets) return state;
        return { ...state, bundlesPublishedAt: iso(now) };
      }
      if (t < published + propagationDelayMs) return state;
      return {
        phase: 'Switching',
        signing: state.target,
        target: state.target,
        retainedRootsPem: state.retainedRootsPem,
        since: iso(now),
      };
    }
    case 'Switching': {
      const seen = Math.max(at(state.oldSignedUntil) || 0, facts.oldSignedUntil?.getTime() ?? 0);
      const oldSignedUntil = seen > 0 ? iso(new Date(seen)) : undefined;
      if (facts.oldSigned > 0) {
        return oldSignedUntil === state.oldSignedUntil ? state : { ...state, oldSignedUntil };
      }
      // Every Secret has a new SVID; pods get it within the delay, and an old SVID kept elsewhere (a copy,
      // a subPath mount) stays trusted until it expires.
      const retireAt = new Date(Math.max(seen, t) + propagationDelayMs);
      return {
        ...state,
        phase: 'Retiring',
        since: iso(now),
        ...(oldSignedUntil ? { oldSignedUntil } : {}),
        retireAt: iso(retireAt),
      };
    }
    case 'Retiring': {
      if (t < at(state.retireAt)) return state;
      return {
        phase: 'Stable',
        signing: state.signing,
        target: state.target,
        retainedRootsPem: '',
        since: iso(now),
      };
    }
  }
}

/** Whether the previous CA still signs: only while Preparing. */
export function signsWithPrevious(state: RotationState): boolean {
  return state.phase === 'Preparing' && state.signing !== state.target;
}

/** The certificates of `pem`, de-duplicated, without any that also appear in `exclude`. */
export function uniqueCerts(pem: string, exclude = ''): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const skip = new Set(
    (exclude.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(norm),
  );
  const seen = new Set<string>();
  return blocks
    .filter((b) => {
      const k = norm(b);
      if (skip.has(k) || seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .map((b) => `${b}\n`)
    .join('');
}

const norm = (block: string) => block.replace(/\s+/g, '');
