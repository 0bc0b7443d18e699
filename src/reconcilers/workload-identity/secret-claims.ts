// Which WorkloadIdentities name the same Secret, and which of them gets it. Two identities in a namespace
// with the same secretName used to be decided by whichever created the Secret first (a race, and after a
// restart or a deletion, a different winner). Now the oldest identity wins, always: by creationTimestamp,
// then by name, then by UID, so every replica and every restart decides the same.
import type { WorkloadIdentity } from './types.ts';

export interface Claimant {
  name: string;
  uid: string;
  created: string;
}

const older = (a: Claimant, b: Claimant): number =>
  Date.parse(a.created) - Date.parse(b.created) ||
  (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) ||
  (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0);

/** The claiming identity as cached (the newest version the watch delivered; update is called with each). */
type Claim = Pick<WorkloadIdentity, 'metadata'>;

/** A claim as the callers read it, made when asked (holding one object per identity was ~50 bytes each). */
const claimantOf = (c: Claim): Claimant => ({
  name: c.metadata.name,
  uid: c.metadata.uid,
  created: c.metadata.creationTimestamp ?? '',
});

/**
 * The claims on one Secret: nearly always a single identity, held as itself; a Map only while several
 * identities name the same Secret. A Map per Secret was ~300 bytes per identity at 10,000 identities.
 */
type Claims = Claim | Map<string, Claim>;

const claimsOf = (c: Claims | undefined): Claim[] =>
  c === undefined ? [] : c instanceof Map ? [...c.values()] : [c];

export class SecretClaims {
  /** `namespace/secretName` → its claimant, or identity name → claimant when several. */
  private readonly bySecret = new Map<string, Claims>();
  /** `namespace/identityName` → the secret key it claims. */
  private readonly byIdentity = new Map<string, string>();

  /**
   * Records an identity's claim (a new or changed secretName). Returns the keys of identities whose claim
   * outcome may have changed, to be reconciled again.
   */
  update(wi: WorkloadIdentity): string[] {
    const ns = wi.metadata.namespace;
    const identityKey = `${ns}/${wi.metadata.name}`;
    const secretKey = `${ns}/${wi.spec.secretName}`;
    const previous = this.byIdentity.get(identityKey);
    const affected = previous && previous !== secretKey ? this.release(identityKey, previous) : [];
    const name = wi.metadata.name;
    const claims = this.bySecret.get(secretKey);
    if (claims === undefined || (!(claims instanceof Map) && claims.metadata.name === name)) {
      this.bySecret.set(secretKey, wi);
    } else if (claims instanceof Map) {
      claims.set(name, wi);
    } else {
      this.bySecret.set(
        secretKey,
        new Map<string, Claim>([
          [claims.metadata.name, claims],
          [name, wi],
        ]),
      );
    }
    // An unchanged claim keeps the string it was recorded with (the one bySecret's key is), not a copy.
    if (previous !== secretKey) this.byIdentity.set(identityKey, secretKey);
    return [...affected, ...this.keysOf(secretKey)].filter((k) => k !== identityKey);
  }

  /** Drops a deleted identity's claim; returns the identities that shared its Secret. */
  remove(namespace: string, name: string): string[] {
    const identityKey = `${namespace}/${name}`;
    const secretKey = this.byIdentity.get(identityKey);
    return secretKey ? this.release(identityKey, secretKey) : [];
  }

  /** The identity that gets `namespace/secretName`, when more than one claims it. */
  winner(namespace: string, secretName: string): Claimant | undefined {
    const claims = this.bySecret.get(`${namespace}/${secretName}`);
    if (!(claims instanceof Map)) return claims && claimantOf(claims);
    return [...claims.values()].map(claimantOf).sort(older)[0];
  }

  /** Every identity claiming `namespace/secretName`. */
  claimants(namespace: string, secretName: string): Claimant[] {
    return claimsOf(this.bySecret.get(`${namespace}/${secretName}`)).map(claimantOf);
  }

  private release(identityKey: string, secretKey: string): string[] {
    const claims = this.bySecret.get(secretKey);
    const name = identityKey.slice(identityKey.indexOf('/') + 1);
    if (claims instanceof Map) {
      claims.delete(name);
      const [only] = claims.values();
      if (claims.size === 1 && only) this.bySecret.set(secretKey, only);
      else if (claims.size === 0) this.bySecret.delete(secretKey);
    } else if (claims?.metadata.name === name) this.bySecret.delete(secretKey);
    this.byIdentity.delete(identityKey);
    return this.keysOf(secretKey);
  }

  private keysOf(secretKey: string): string[] {
    const ns = secretKey.slice(0, secretKey.indexOf('/'));
    return claimsOf(this.bySecret.get(secretKey)).map((c) => `${ns}/${c.metadata.name}`);
  }
}
