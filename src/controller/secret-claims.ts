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

export class SecretClaims {
  /** `namespace/secretName` → identity name → claimant. */
  private readonly bySecret = new Map<string, Map<string, Claimant>>();
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
    let claims = this.bySecret.get(secretKey);
    if (!claims) this.bySecret.set(secretKey, (claims = new Map()));
    claims.set(wi.metadata.name, {
      name: wi.metadata.name,
      uid: wi.metadata.uid,
      created: wi.metadata.creationTimestamp ?? '',
    });
    this.byIdentity.set(identityKey, secretKey);
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
    if (!claims || claims.size < 2) return claims?.values().next().value;
    return [...claims.values()].sort(older)[0];
  }

  /** Every identity claiming `namespace/secretName`. */
  claimants(namespace: string, secretName: string): Claimant[] {
    return [...(this.bySecret.get(`${namespace}/${secretName}`)?.values() ?? [])];
  }

  private release(identityKey: string, secretKey: string): string[] {
    const claims = this.bySecret.get(secretKey);
    const name = identityKey.slice(identityKey.indexOf('/') + 1);
    claims?.delete(name);
    if (claims?.size === 0) this.bySecret.delete(secretKey);
    this.byIdentity.delete(identityKey);
    return this.keysOf(secretKey);
  }

  private keysOf(secretKey: string): string[] {
    const ns = secretKey.slice(0, secretKey.indexOf('/'));
    return [...(this.bySecret.get(secretKey)?.keys() ?? [])].map((n) => `${ns}/${n}`);
  }
}
