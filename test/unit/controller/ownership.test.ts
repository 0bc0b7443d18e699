// Issue 13, item 4: ownership and hygiene decisions, without I/O.
import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import { ownershipDecision } from '../../../src/controller/ownership.ts';
import { SecretClaims } from '../../../src/controller/secret-claims.ts';
import { secretPatch } from '../../../src/controller/secret.ts';
import { extraDataKeys, withOnlySvidData } from '../../../src/controller/slim.ts';
import type { WorkloadIdentity } from '../../../src/controller/types.ts';
import { WriteMemory } from '../../../src/controller/write-memory.ts';
import type { IssuedSvid } from '../../../src/pki/index.ts';

const wi = (name: string, created: string, secretName = 'shared', ns = 'app'): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: { name, namespace: ns, uid: `uid-${name}`, creationTimestamp: created },
  spec: { serviceAccountName: name, secretName },
});

const managed = (owner: WorkloadIdentity, data: Record<string, string> = {}): k8s.V1Secret => ({
  metadata: {
    name: owner.spec.secretName,
    namespace: owner.metadata.namespace,
    resourceVersion: '10',
    labels: { 'app.kubernetes.io/managed-by': 'svid-operator' },
    ownerReferences: [
      {
        apiVersion: 'identity.svid.dev/v1alpha1',
        kind: 'WorkloadIdentity',
        name: owner.metadata.name,
        uid: owner.metadata.uid,
        controller: true,
      },
    ],
  },
  data: { 'tls.crt': 'Y3J0', 'tls.key': 'a2V5', 'ca.crt': 'Y2E=', ...data },
});

const CA = { namespace: 'svid-system', name: 'svid-operator-ca' };

describe('ownership and hygiene', () => {
  describe('secretName conflicts between identities', () => {
    it('the oldest identity wins, whatever order they were seen in', () => {
      const a = wi('a', '2026-01-01T00:00:02Z');
      const b = wi('b', '2026-01-01T00:00:01Z');
      const c = wi('c', '2026-01-01T00:00:03Z');
      for (const order of [
        [a, b, c],
        [c, b, a],
        [b, c, a],
      ]) {
        const claims = new SecretClaims();
        for (const w of order) claims.update(w);
        expect(claims.winner('app', 'shared')?.name).to.equal('b');
        for (const loser of [a, c]) {
          const d = ownershipDecision({ wi: loser, secret: undefined, caSecret: CA, claims });
          expect(d.kind).to.equal('conflict');
          expect(d.kind === 'conflict' && d.message).to.equal(
            'Secret app/shared is also the secretName of WorkloadIdentity b, which is older (created 2026-01-01T00:00:01Z); when identities share a secretName the oldest gets it: choose another secretName for this one',
          );
        }
        expect(ownershipDecision({ wi: b, secret: undefined, caSecret: CA, claims }).kind).to.equal(
          'proceed',
        );
      }
    });

    it('breaks a tie of creation times by name, then by UID', () => {
      const claims = new SecretClaims();
      claims.update(wi('zeta', '2026-01-01T00:00:00Z'));
      claims.update(wi('alpha', '2026-01-01T00:00:00Z'));
      expect(claims.winner('app', 'shared')?.name).to.equal('alpha');
    });

    it('re-decides when the winner is deleted or renames its secretName, naming whom to reconcile again', () => {
      const claims = new SecretClaims();
      const old = wi('old', '2026-01-01T00:00:00Z');
      const young = wi('young', '2026-02-01T00:00:00Z');
      claims.update(old);
      expect(claims.update(young)).to.deep.equal(['app/old']);
      expect(claims.remove('app', 'old')).to.deep.equal(['app/young']);
      expect(claims.winner('app', 'shared')?.name).to.equal('young');
      claims.update(old);
      expect(claims.winner('app', 'shared')?.name).to.equal('old');
      // old moves to another Secret: young gets "shared".
      expect(claims.update({ ...old, spec: { ...old.spec, secretName: 'other' } })).to.deep.equal([
        'app/young',
      ]);
      expect(claims.winner('app', 'shared')?.name).to.equal('young');
      expect(claims.claimants('app', 'other').map((c) => c.name)).to.deep.equal(['old']);
    });

    it('does not mix namespaces', () => {
      const claims = new SecretClaims();
      claims.update(wi('a', '2026-01-01T00:00:00Z', 'shared', 'one'));
      claims.update(wi('b', '2026-02-01T00:00:00Z', 'shared', 'two'));
      expect(claims.winner('two', 'shared')?.name).to.equal('b');
    });

    it('the winner takes over a managed Secret that was written for the loser', () => {
      const old = wi('old', '2026-01-01T00:00:00Z');
      const young = wi('young', '2026-02-01T00:00:00Z');
      const claims = new SecretClaims();
      claims.update(old);
      claims.update(young);
      const d = ownershipDecision({ wi: old, secret: managed(young), caSecret: CA, claims });
      expect(d).to.deep.equal({
        kind: 'rewrite',
        cause: 'OwnerChanged',
        message:
          'the Secret was written for WorkloadIdentity young (uid uid-young), which no longer gets it; it is taken over',
      });
    });

    it('never takes over a Secret another controller owns, or one without the managed-by label', () => {
      const a = wi('a', '2026-01-01T00:00:00Z');
      const claims = new SecretClaims();
      claims.update(a);
      const foreign = managed(a);
      foreign.metadata = {
        ...foreign.metadata,
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'x', uid: 'u', controller: true },
        ],
      };
      expect(ownershipDecision({ wi: a, secret: foreign, caSecret: CA, claims }).kind).to.equal('proceed');
      const unlabelled = managed(wi('b', '2026-01-01T00:00:00Z'));
      unlabelled.metadata = { ...unlabelled.metadata, labels: {} };
      expect(ownershipDecision({ wi: a, secret: unlabelled, caSecret: CA, claims }).kind).to.equal('proceed');
    });
  });

  describe("the CA Secret's name", () => {
    const cases: [string, WorkloadIdentity, string][] = [
      [
        'the same name in the CA namespace',
        wi('w', '2026-01-01T00:00:00Z', 'svid-operator-ca', 'svid-system'),
        'conflict',
      ],
      [
        'the same name in another namespace',
        wi('w', '2026-01-01T00:00:00Z', 'svid-operator-ca', 'app'),
        'proceed',
      ],
      [
        'another name in the CA namespace',
        wi('w', '2026-01-01T00:00:00Z', 'w-svid', 'svid-system'),
        'proceed',
      ],
    ];
    for (const [what, identity, kind] of cases) {
      it(`${what}: ${kind}`, () => {
        const claims = new SecretClaims();
        claims.update(identity);
        const d = ownershipDecision({ wi: identity, secret: undefined, caSecret: CA, claims });
        expect(d.kind).to.equal(kind);
        if (d.kind === 'conflict')
          expect(d.message).to.equal(
            "secretName svid-operator-ca is the operator's CA Secret (svid-system/svid-operator-ca); an identity may never write it: choose another secretName",
          );
      });
    }
  });

  describe('extra data keys', () => {
    it('are not kept in the cached copy, only counted', () => {
      const padded = managed(wi('a', 'x'), { 'pad-1': 'x'.repeat(10_000), 'pad-2': 'y'.repeat(10_000) });
      const slim = withOnlySvidData(padded);
      expect(Object.keys(slim.data ?? {}).sort()).to.deep.equal(['ca.crt', 'tls.crt', 'tls.key']);
      expect(extraDataKeys(slim)).to.equal(2);
      expect(JSON.stringify(slim).length).to.be.lessThan(1000);
      expect(extraDataKeys(withOnlySvidData(managed(wi('a', 'x'))))).to.equal(0);
    });

    it('count as tampering: the owner rewrites the Secret', () => {
      const a = wi('a', '2026-01-01T00:00:00Z');
      const claims = new SecretClaims();
      claims.update(a);
      const one = withOnlySvidData(managed(a, { extra: 'eA==' }));
      expect(ownershipDecision({ wi: a, secret: one, caSecret: CA, claims })).to.deep.equal({
        kind: 'rewrite',
        cause: 'Tampered',
        message:
          'the Secret holds 1 data key the operator does not write; that counts as tampering: the Secret is rewritten without it',
      });
      const three = withOnlySvidData(managed(a, { x: '', y: '', z: '' }));
      const d = ownershipDecision({ wi: a, secret: three, caSecret: CA, claims });
      expect(d.kind === 'rewrite' && d.message).to.match(/holds 3 data keys .* without them$/);
    });
  });

  describe('the Secret patch', () => {
    const svid: IssuedSvid = {
      spiffeId: 'spiffe://td/ns/app/sa/a',
      serialNumber: '0a',
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2026-01-01T01:00:00Z'),
      certChainPem: 'CERT',
      keyPem: 'KEY',
      bundlePem: 'BUNDLE',
      clampedToCa: false,
    } as IssuedSvid;

    it('writes only what the operator owns, conditional on the resourceVersion', () => {
      const a = wi('a', 'x');
      const body = secretPatch(a, svid, 'fp', '42');
      expect(body).to.deep.equal({
        metadata: {
          resourceVersion: '42',
          labels: {
            'app.kubernetes.io/managed-by': 'svid-operator',
            'identity.svid.dev/workload-identity': 'a',
          },
          annotations: {
            'identity.svid.dev/spiffe-id': 'spiffe://td/ns/app/sa/a',
            'identity.svid.dev/serial-number': '0a',
            'identity.svid.dev/not-after': '2026-01-01T01:00:00Z',
            'identity.svid.dev/ca-fingerprint': 'fp',
          },
          ownerReferences: [
            {
              apiVersion: 'identity.svid.dev/v1alpha1',
              kind: 'WorkloadIdentity',
              name: 'a',
              uid: 'uid-a',
              controller: true,
              blockOwnerDeletion: false,
            },
          ],
        },
        data: {
          'tls.crt': Buffer.from('CERT').toString('base64'),
          'tls.key': Buffer.from('KEY').toString('base64'),
          'ca.crt': Buffer.from('BUNDLE').toString('base64'),
        },
      });
    });

    it('deletes extra keys and the previous controller reference on a takeover', () => {
      const body = secretPatch(wi('a', 'x'), svid, 'fp', '42', {
        removeKeys: ['pad', 'tls.crt'],
        previousController: 'uid-b',
      }) as {
        metadata: { ownerReferences: Record<string, unknown>[] };
        data: Record<string, string | null>;
      };
      expect(body.data.pad).to.equal(null);
      expect(body.data['tls.crt']).to.be.a('string');
      expect(body.metadata.ownerReferences[1]).to.deep.equal({ uid: 'uid-b', $patch: 'delete' });
      const own = secretPatch(wi('a', 'x'), svid, 'fp', '42', { previousController: 'uid-a' }) as {
        metadata: { ownerReferences: unknown[] };
      };
      expect(own.metadata.ownerReferences).to.have.length(1);
    });
  });

  describe('remembered own writes', () => {
    const obj = (rv: string) => ({ metadata: { name: 's', namespace: 'app', resourceVersion: rv } });

    it('a write answered after the watch delivered the deletion does not resurrect the object', () => {
      const cache = new Map<string, ReturnType<typeof obj>>();
      const memory = new WriteMemory(cache);
      cache.set('app/s', obj('10'));
      // The write (rv 11) is sent; the object is deleted (rv 12) and the watch delivers that first.
      cache.delete('app/s');
      memory.deleted('app/s', obj('12'));
      memory.wrote('app/s', obj('11'));
      expect(memory.get('app/s')).to.equal(undefined);
      expect(memory.size).to.equal(0);
    });

    it('a remembered write is dropped by a later deletion', () => {
      const cache = new Map<string, ReturnType<typeof obj>>();
      const memory = new WriteMemory(cache);
      memory.wrote('app/s', obj('11'));
      expect(memory.get('app/s')?.metadata.resourceVersion).to.equal('11');
      memory.deleted('app/s', obj('12'));
      expect(memory.get('app/s')).to.equal(undefined);
    });

    it('an object created again after the deletion is remembered', () => {
      const cache = new Map<string, ReturnType<typeof obj>>();
      const memory = new WriteMemory(cache);
      memory.deleted('app/s', obj('12'));
      memory.wrote('app/s', obj('13'));
      expect(memory.get('app/s')?.metadata.resourceVersion).to.equal('13');
    });

    it('still answers with its own write until the watch catches up, then with the cache', () => {
      const cache = new Map<string, ReturnType<typeof obj>>();
      const memory = new WriteMemory(cache);
      cache.set('app/s', obj('10'));
      memory.wrote('app/s', obj('11'));
      expect(memory.get('app/s')?.metadata.resourceVersion).to.equal('11');
      cache.set('app/s', obj('11'));
      memory.seen('app/s', obj('11'));
      expect(memory.size).to.equal(0);
      expect(memory.get('app/s')?.metadata.resourceVersion).to.equal('11');
    });
  });
});
