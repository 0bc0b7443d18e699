import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import { withoutManagedFields } from '../../../../src/controller-runtime/managed-fields.ts';
import {
  BundleInterner,
  extraDataKeys,
  StringPool,
  slimIdentity,
  withOnlyDecisionMetadata,
} from '../../../../src/reconcilers/workload-identity/slim.ts';
import {
  ANNOTATION_CA,
  ANNOTATION_NOT_AFTER,
  ANNOTATION_SERIAL,
  ANNOTATION_SPIFFE_ID,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OWNER_LABEL,
} from '../../../../src/reconcilers/workload-identity/types.ts';

const secret = (bundle: string): k8s.V1Secret =>
  // A fresh string each time, as JSON.parse makes one per Secret.
  JSON.parse(
    JSON.stringify({
      metadata: { name: 's', managedFields: [{ manager: 'svid-operator', fieldsV1: { 'f:data': {} } }] },
      data: { 'tls.crt': 'Y2VydA==', 'ca.crt': bundle },
    }),
  ) as k8s.V1Secret;

describe('cache trimming', () => {
  it('drops managedFields and keeps everything the operator reads', () => {
    const s = withoutManagedFields(secret('YnVuZGxl'));
    expect(s.metadata).to.deep.equal({ name: 's' });
    expect(s.data).to.deep.equal({ 'tls.crt': 'Y2VydA==', 'ca.crt': 'YnVuZGxl' });
  });

  it('pools one copy per distinct trust bundle, and only the most recent ones', () => {
    const interner = new BundleInterner(2);
    for (let i = 0; i < 3; i++) {
      const s = interner.secret(secret('QQ=='));
      expect(s.data?.['ca.crt']).to.equal('QQ==');
      expect(s.metadata?.managedFields).to.equal(undefined);
    }
    expect(interner.size).to.equal(1);
    for (const b of ['Qg==', 'Qw==', 'RA==']) interner.secret(secret(b));
    expect(interner.size).to.equal(2);
  });
});

describe('what the caches keep of a managed Secret and an identity', () => {
  const managed = (): k8s.V1Secret =>
    JSON.parse(
      JSON.stringify({
        metadata: {
          name: 'payments-svid',
          namespace: 'prod',
          uid: 'u1',
          resourceVersion: '42',
          creationTimestamp: '2026-01-01T00:00:00Z',
          managedFields: [{ manager: 'svid-operator' }],
          labels: {
            [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
            [OWNER_LABEL]: 'payments',
            team: 'a',
          },
          annotations: {
            [ANNOTATION_SPIFFE_ID]: 'spiffe://td/ns/prod/sa/payments',
            [ANNOTATION_SERIAL]: '4a'.repeat(16),
            [ANNOTATION_NOT_AFTER]: '2026-01-01T01:00:00Z',
            [ANNOTATION_CA]: 'ab'.repeat(32),
            'other.tool/note': 'x'.repeat(500),
          },
          ownerReferences: [
            {
              apiVersion: 'identity.svid.dev/v1alpha1',
              kind: 'WorkloadIdentity',
              name: 'payments',
              uid: 'w1',
              controller: true,
              blockOwnerDeletion: false,
            },
          ],
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5', 'ca.crt': 'YnVuZGxl', padding: 'QUFB' },
      }),
    ) as k8s.V1Secret;

  it('keeps the metadata decisions read, and only that', () => {
    const s = new BundleInterner().secret(managed());
    expect(s.metadata).to.deep.equal({
      name: 'payments-svid',
      namespace: 'prod',
      uid: 'u1',
      resourceVersion: '42',
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: 'payments' },
      annotations: { [ANNOTATION_NOT_AFTER]: '2026-01-01T01:00:00Z', [ANNOTATION_CA]: 'ab'.repeat(32) },
      ownerReferences: [
        {
          apiVersion: 'identity.svid.dev/v1alpha1',
          kind: 'WorkloadIdentity',
          name: 'payments',
          uid: 'w1',
          controller: true,
        },
      ],
    });
    expect(s.data).to.deep.equal({ 'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5', 'ca.crt': 'YnVuZGxl' });
    expect(extraDataKeys(s)).to.equal(1);
  });

  it('keeps a Secret without labels, annotations or owners as such (the ownership check sees them missing)', () => {
    const bare = JSON.parse(
      JSON.stringify({ metadata: { name: 'x', namespace: 'y', resourceVersion: '1' } }),
    );
    expect(withOnlyDecisionMetadata(bare as k8s.V1Secret).metadata).to.deep.equal({
      name: 'x',
      namespace: 'y',
      resourceVersion: '1',
    });
  });

  it("drops kubectl's last-applied copy and managedFields from an identity, keeping other annotations", () => {
    const wi = {
      metadata: {
        name: 'a',
        managedFields: [{}],
        annotations: {
          'kubectl.kubernetes.io/last-applied-configuration': '{"spec":{}}',
          'identity.svid.dev/renew-request': 'now',
        },
      },
    };
    expect(slimIdentity(wi).metadata).to.deep.equal({
      name: 'a',
      annotations: { 'identity.svid.dev/renew-request': 'now' },
    });
    const only = { metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } } };
    expect(slimIdentity(only).metadata).to.deep.equal({});
  });
});

describe('string pool (one copy of values every cached object repeats)', () => {
  it('returns equal values, and remembers at most its bound, the oldest dropped first', () => {
    const pool = new StringPool(2);
    expect(pool.intern('a')).to.equal('a');
    expect(pool.intern(undefined)).to.equal(undefined);
    pool.intern('b');
    pool.intern('a');
    expect(pool.size).to.equal(2);
    pool.intern('c');
    expect(pool.size).to.equal(2);
    for (let i = 0; i < 1000; i++) expect(pool.intern(`v${i}`)).to.equal(`v${i}`);
    expect(pool.size).to.equal(2);
  });

  it('leaves every value of a trimmed Secret and identity as it was', () => {
    const interner = new BundleInterner();
    const raw = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: 'a-svid',
        namespace: 'prod',
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: 'a' },
        annotations: { [ANNOTATION_CA]: 'ab'.repeat(32), [ANNOTATION_NOT_AFTER]: '2026-01-01T00:00:00Z' },
        ownerReferences: [
          {
            apiVersion: 'identity.svid.dev/v1alpha1',
            kind: 'WorkloadIdentity',
            name: 'a',
            uid: 'u',
            controller: true,
          },
        ],
      },
      data: { 'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5', 'ca.crt': 'YnVuZGxl' },
    };
    for (let i = 0; i < 3; i++) {
      const copy = JSON.parse(JSON.stringify(raw)) as k8s.V1Secret;
      expect(interner.secret(copy)).to.deep.equal(raw);
    }
    const wi: { apiVersion: string; kind: string; metadata: { annotations?: Record<string, string> } } = {
      apiVersion: 'identity.svid.dev/v1alpha1',
      kind: 'WorkloadIdentity',
      metadata: { annotations: { x: 'y' } },
    };
    expect(interner.identity(JSON.parse(JSON.stringify(wi)) as typeof wi)).to.deep.equal(wi);
  });
});
