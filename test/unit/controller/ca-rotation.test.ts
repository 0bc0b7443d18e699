import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import { bundleOf, rotationFacts } from '../../../src/controller/ca-rotation.ts';
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
