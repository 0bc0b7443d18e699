import { expect } from 'chai';
import fc from 'fast-check';
import { SecretClaims, type Claimant } from '../../../../src/reconcilers/workload-identity/secret-claims.ts';
import type { WorkloadIdentity } from '../../../../src/reconcilers/workload-identity/types.ts';

const wi = (ns: string, name: string, secretName: string, created: string): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: { name, namespace: ns, uid: `uid-${name}`, creationTimestamp: created },
  spec: { serviceAccountName: name, secretName },
});

/** The plain model the compact structure must behave like: a Map of claimants per Secret. */
class Model {
  private readonly bySecret = new Map<string, Map<string, Claimant>>();
  private readonly byIdentity = new Map<string, string>();
  update(w: WorkloadIdentity): string[] {
    const ik = `${w.metadata.namespace}/${w.metadata.name}`;
    const sk = `${w.metadata.namespace}/${w.spec.secretName}`;
    const prev = this.byIdentity.get(ik);
    const affected = prev && prev !== sk ? this.release(ik, prev) : [];
    let m = this.bySecret.get(sk);
    if (!m) this.bySecret.set(sk, (m = new Map()));
    m.set(w.metadata.name, {
      name: w.metadata.name,
      uid: w.metadata.uid,
      created: w.metadata.creationTimestamp ?? '',
    });
    this.byIdentity.set(ik, sk);
    return [...affected, ...this.keys(sk)].filter((k) => k !== ik);
  }
  remove(ns: string, name: string): string[] {
    const ik = `${ns}/${name}`;
    const sk = this.byIdentity.get(ik);
    return sk ? this.release(ik, sk) : [];
  }
  claimants(ns: string, secret: string): string[] {
    return [...(this.bySecret.get(`${ns}/${secret}`)?.keys() ?? [])];
  }
  private release(ik: string, sk: string): string[] {
    const m = this.bySecret.get(sk);
    m?.delete(ik.slice(ik.indexOf('/') + 1));
    if (m?.size === 0) this.bySecret.delete(sk);
    this.byIdentity.delete(ik);
    return this.keys(sk);
  }
  private keys(sk: string): string[] {
    const ns = sk.slice(0, sk.indexOf('/'));
    return [...(this.bySecret.get(sk)?.keys() ?? [])].map((n) => `${ns}/${n}`);
  }
}

const op = fc.oneof(
  fc.record({
    kind: fc.constant('update' as const),
    ns: fc.constantFrom('a', 'b'),
    name: fc.constantFrom('x', 'y', 'z', 'w'),
    secret: fc.constantFrom('s1', 's2', 's3'),
    created: fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', ''),
  }),
  fc.record({
    kind: fc.constant('remove' as const),
    ns: fc.constantFrom('a', 'b'),
    name: fc.constantFrom('x', 'y', 'z', 'w', 'never'),
  }),
);

describe('secret claims (one claimant held as itself, a Map only when several)', () => {
  it('behaves like a Map of claimants per Secret for any sequence of updates and deletions', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const claims = new SecretClaims();
        const model = new Model();
        for (const o of ops) {
          if (o.kind === 'update') {
            const w = wi(o.ns, o.name, o.secret, o.created);
            expect(claims.update(w)).to.deep.equal(model.update(w));
          } else {
            expect(claims.remove(o.ns, o.name)).to.deep.equal(model.remove(o.ns, o.name));
          }
          for (const ns of ['a', 'b'])
            for (const s of ['s1', 's2', 's3']) {
              const names = model.claimants(ns, s);
              expect(claims.claimants(ns, s).map((c) => c.name)).to.deep.equal(names);
              // The winner is always one of the claimants, and there is one exactly when there are claimants.
              const winner = claims.winner(ns, s);
              if (names.length === 0) expect(winner).to.equal(undefined);
              else expect(names).to.include(winner?.name);
            }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a single claimant re-seen with a new creationTimestamp or UID is replaced, not duplicated', () => {
    const claims = new SecretClaims();
    claims.update(wi('a', 'x', 's', '2026-01-02T00:00:00Z'));
    claims.update({
      ...wi('a', 'x', 's', '2026-01-01T00:00:00Z'),
      metadata: { ...wi('a', 'x', 's', '').metadata, uid: 'new', creationTimestamp: '2026-01-01T00:00:00Z' },
    });
    expect(claims.claimants('a', 's')).to.deep.equal([
      { name: 'x', uid: 'new', created: '2026-01-01T00:00:00Z' },
    ]);
  });

  it('goes back to a single claimant when the others leave, and the oldest still wins when several return', () => {
    const claims = new SecretClaims();
    claims.update(wi('a', 'young', 's', '2026-01-02T00:00:00Z'));
    claims.update(wi('a', 'old', 's', '2026-01-01T00:00:00Z'));
    expect(claims.winner('a', 's')?.name).to.equal('old');
    expect(claims.remove('a', 'old')).to.deep.equal(['a/young']);
    expect(claims.winner('a', 's')?.name).to.equal('young');
    expect(claims.update(wi('a', 'old', 's', '2026-01-01T00:00:00Z'))).to.deep.equal(['a/young']);
    expect(claims.winner('a', 's')?.name).to.equal('old');
    expect(claims.remove('a', 'young')).to.deep.equal(['a/old']);
    expect(claims.remove('a', 'old')).to.deep.equal([]);
    expect(claims.claimants('a', 's')).to.deep.equal([]);
  });
});
