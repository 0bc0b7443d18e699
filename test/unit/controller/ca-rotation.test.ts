import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import { bundleOf, rotationFacts, withUntracked } from '../../../src/controller/ca-rotation.ts';
import { advance, type RotationState } from '../../../src/rotation/phases.ts';
import type { WorkloadIdentity } from '../../../src/controller/types.ts';
import { createSelfSignedCa, loadCa } from '../../../src/pki/index.ts';

const identity = (name: string, ready: 'True' | 'False', deleting = false): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: {
    name,
    namespace: 'ns',
    uid: name,
    ...(deleting ? { deletionTimestamp: '2030-01-01T00:00:00Z' } : {}),
  },
  spec: { serviceAccountName: name, secretName: `${name}-svid` },
  status: {
    conditions: [{ type: 'Ready', status: ready, reason: 'x', message: '', lastTransitionTime: '' }],
  },
});
const secret = (bundle: string, ca: string, notAfter: string): k8s.V1Secret => ({
  metadata: {
    annotations: { 'identity.svid.dev/ca-fingerprint': ca, 'identity.svid.dev/not-after': notAfter },
  },
  data: { 'ca.crt': bundle },
});

describe('CA rotation facts', () => {
  it('counts current bundles and old SVIDs over the Secrets of Ready identities only', () => {
    const ids = new Map([
      ['ns/a', identity('a', 'True')],
      ['ns/b', identity('b', 'True')],
      ['ns/c', identity('c', 'True')],
      // Not Ready (e.g. a policy violation) or being deleted: never holds a rotation up.
      ['ns/d', identity('d', 'False')],
      ['ns/e', identity('e', 'True', true)],
      // Ready but its Secret is not cached (yet): not counted.
      ['ns/f', identity('f', 'True')],
    ]);
    const secrets = new Map([
      ['ns/a-svid', secret('NEW', 'B', '2030-01-01T01:00:00Z')],
      ['ns/b-svid', secret('OLD', 'A', '2030-01-01T02:00:00Z')],
      ['ns/c-svid', secret('NEW', 'A', 'not a date')],
      ['ns/d-svid', secret('OLD', 'A', '2031-01-01T00:00:00Z')],
      ['ns/e-svid', secret('OLD', 'A', '2031-01-01T00:00:00Z')],
    ]);
    const facts = rotationFacts({ keys: () => [...ids.keys()], get: (k) => ids.get(k) }, secrets, 'NEW', 'B');
    expect(facts).to.deep.equal({
      secrets: 3,
      withCurrentBundle: 2,
      oldSigned: 2,
      oldSignedUntil: new Date('2030-01-01T02:00:00Z'),
    });
  });

  it('builds bundles in the given order, each root once, formatted as loadCa formats them', async () => {
    const a = await createSelfSignedCa({ trustDomain: 'example.org' });
    const b = await createSelfSignedCa({ trustDomain: 'example.org' });
    const loadedA = await loadCa(a);
    const loadedB = await loadCa(b);
    expect(bundleOf(loadedA.trustBundlePem)).to.equal(loadedA.trustBundlePem);
    expect(bundleOf(a.certPem, b.certPem, a.certPem, '')).to.equal(
      loadedA.trustBundlePem + loadedB.trustBundlePem,
    );
  });
});

describe('CA rotation with certificates no Secret tracks (pod certificates)', () => {
  const switched: RotationState = {
    phase: 'Switching',
    signing: 'new',
    target: 'new',
    retainedRootsPem: '-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n',
    since: '2026-01-01T00:00:00.000Z',
  };
  const hour = 3600_000;

  it('keeps the old root until the longest pod certificate signed before the switch has expired, plus the delay', () => {
    // Every Secret already holds a new SVID; the last old Secret SVID ended 10 minutes after the switch.
    const facts = {
      secrets: 3,
      withCurrentBundle: 3,
      oldSigned: 0,
      oldSignedUntil: new Date(Date.parse(switched.since) + 600_000),
    };
    const now = new Date(Date.parse(switched.since) + 60_000);
    const next = advance(switched, withUntracked(facts, switched, 2 * hour), now, 120_000);
    expect(next.phase).to.equal('Retiring');
    expect(next.retireAt).to.equal(new Date(Date.parse(switched.since) + 2 * hour + 120_000).toISOString());
    // Without pod certificates the Secrets' SVIDs decide alone.
    const alone = advance(switched, withUntracked(facts, switched, 0), now, 120_000);
    expect(alone.retireAt).to.equal(new Date(Date.parse(switched.since) + 600_000 + 120_000).toISOString());
  });

  it('changes nothing outside Switching, or when a Secret SVID outlives the pod certificates', () => {
    const facts = {
      secrets: 1,
      withCurrentBundle: 1,
      oldSigned: 0,
      oldSignedUntil: new Date(Date.parse(switched.since) + 3 * hour),
    };
    expect(withUntracked(facts, switched, 2 * hour)).to.equal(facts);
    const preparing: RotationState = { ...switched, phase: 'Preparing', signing: 'old' };
    const none = { secrets: 1, withCurrentBundle: 0, oldSigned: 1 };
    expect(withUntracked(none, preparing, 2 * hour)).to.equal(none);
  });
});
