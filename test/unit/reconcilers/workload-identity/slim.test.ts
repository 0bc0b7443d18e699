import { expect } from 'chai';
import fc from 'fast-check';
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

  it("shares its owner's strings only where they are equal: the Secret reads exactly as without sharing", () => {
    const asked: string[] = [];
    const owners = [
      undefined,
      { metadata: { name: 'payments', uid: 'w1' }, spec: { secretName: 'payments-svid' } },
      { metadata: { name: 'payments', uid: 'other-uid' }, spec: { secretName: 'elsewhere' } },
      { metadata: { name: 'payments' } },
      { metadata: { name: 'not-the-owner', uid: 'w1' }, spec: { secretName: 'payments-svid' } },
    ];
    const plain = new BundleInterner().secret(managed());
    for (const owner of owners) {
      const interner = new BundleInterner();
      interner.ownerOf = (namespace, name) => {
        asked.push(`${namespace}/${name}`);
        return owner;
      };
      expect(interner.secret(managed())).to.deep.equal(plain);
    }
    expect(asked).to.deep.equal(owners.map(() => 'prod/payments'));
  });

  it('shares owner strings without changing any value (property)', () => {
    const word = fc.constantFrom('payments', 'payments-svid', 'w1', 'x', '');
    fc.assert(
      fc.property(word, word, word, fc.option(word, { nil: undefined }), (name, uid, secretName, label) => {
        const raw = managed();
        const m = raw.metadata as k8s.V1ObjectMeta;
        if (label === undefined) delete m.labels?.[OWNER_LABEL];
        else (m.labels as Record<string, string>)[OWNER_LABEL] = label;
        const expected = new BundleInterner().secret(JSON.parse(JSON.stringify(raw)) as k8s.V1Secret);
        const interner = new BundleInterner();
        interner.ownerOf = () => ({ metadata: { name, uid }, spec: { secretName } });
        expect(interner.secret(raw)).to.deep.equal(expected);
      }),
    );
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

  it("drops kubectl's last-applied copy and managedFields from an identity, keeping the renew request", () => {
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

  // What an identity's metadata may carry, and what the cache keeps of it.
  const decisionMetadata = {
    name: 'a',
    namespace: 'prod',
    uid: '0b6c7f4e-1',
    creationTimestamp: '2026-11-24T08:00:00Z',
    generation: 3,
    resourceVersion: '4711',
  };
  const identityCases: { name: string; metadata: Record<string, unknown>; kept: Record<string, unknown> }[] =
    [
      { name: 'the fields decisions read, as they were', metadata: decisionMetadata, kept: decisionMetadata },
      {
        name: 'a deletion in progress stays visible',
        metadata: { ...decisionMetadata, deletionTimestamp: '2026-11-24T09:00:00Z' },
        kept: { ...decisionMetadata, deletionTimestamp: '2026-11-24T09:00:00Z' },
      },
      {
        name: 'labels, finalizers, owner references, generateName and unknown fields are not held',
        metadata: {
          ...decisionMetadata,
          labels: { team: 'a', ['x'.repeat(63)]: 'y'.repeat(63) },
          finalizers: ['example.com/keep'],
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', uid: 'u' }],
          generateName: 'a-',
          selfLink: '/apis/x',
          futureField: { nested: 'x'.repeat(1000) },
        },
        kept: decisionMetadata,
      },
      {
        name: "other annotations are not held (a user's padding costs the operator nothing)",
        metadata: {
          ...decisionMetadata,
          annotations: { 'example.com/notes': 'z'.repeat(100_000), 'identity.svid.dev/other': 'x' },
        },
        kept: decisionMetadata,
      },
      {
        name: 'the renew request is kept beside them, whatever its value',
        metadata: {
          ...decisionMetadata,
          annotations: { 'example.com/notes': 'z', 'identity.svid.dev/renew-request': 'r'.repeat(5000) },
        },
        kept: { ...decisionMetadata, annotations: { 'identity.svid.dev/renew-request': 'r'.repeat(5000) } },
      },
      { name: 'empty metadata', metadata: {}, kept: {} },
      {
        name: 'annotations that are not an object',
        metadata: { name: 'a', annotations: 'x' },
        kept: { name: 'a' },
      },
    ];
  for (const c of identityCases) {
    it(`identity metadata: ${c.name}`, () => {
      const wi = JSON.parse(JSON.stringify({ metadata: c.metadata })) as {
        metadata: { annotations?: Record<string, string> };
      };
      expect(slimIdentity(wi).metadata).to.deep.equal(c.kept);
    });
  }

  it('identity metadata: whatever else it carries, exactly the kept keys survive, unchanged (property)', () => {
    const kept = new Set([
      'name',
      'namespace',
      'uid',
      'creationTimestamp',
      'generation',
      'resourceVersion',
      'deletionTimestamp',
    ]);
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue()),
        fc.dictionary(fc.string(), fc.string()),
        (metadata, annotations) => {
          const wi = { metadata: { ...metadata, annotations } } as {
            metadata: { annotations?: Record<string, string> };
          };
          const expected: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(metadata)) if (kept.has(k) && v !== undefined) expected[k] = v;
          const renew = Object.hasOwn(annotations, 'identity.svid.dev/renew-request')
            ? annotations['identity.svid.dev/renew-request']
            : undefined;
          if (renew !== undefined) expected.annotations = { 'identity.svid.dev/renew-request': renew };
          expect(slimIdentity(wi).metadata).to.deep.equal(expected);
        },
      ),
    );
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
      metadata: { annotations: { 'identity.svid.dev/renew-request': 'y' } },
    };
    expect(interner.identity(JSON.parse(JSON.stringify(wi)) as typeof wi)).to.deep.equal(wi);
  });

  const identity = (name: string) => ({
    apiVersion: 'identity.svid.dev/v1alpha1',
    kind: 'WorkloadIdentity',
    metadata: { name, namespace: 'prod', uid: `uid-${name}`, resourceVersion: '7', generation: 1 },
    spec: {
      serviceAccountName: 'payments-frontend',
      secretName: `${name}-svid`,
      duration: '24h',
      renewBefore: '8h',
      privateKey: { algorithm: 'ECDSA', size: 256 },
      dnsNames: [`${name}.prod.svc`],
    },
    status: {
      spiffeID: 'spiffe://example.org/ns/prod/sa/payments-frontend',
      serialNumber: `0a${name}`,
      notAfter: '2026-11-25T08:00:00Z',
      observedGeneration: 1,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Issued',
          message: `SVID 0a${name} valid until 2026-11-25T08:00:00Z`,
          lastTransitionTime: '2026-11-24T08:00:00Z',
          observedGeneration: 1,
        },
      ],
    },
  });

  it('shares the values identities repeat, and leaves every value of spec and status as it was', () => {
    const interner = new BundleInterner();
    const a = interner.identity(JSON.parse(JSON.stringify(identity('a'))) as ReturnType<typeof identity>);
    const b = interner.identity(JSON.parse(JSON.stringify(identity('b'))) as ReturnType<typeof identity>);
    expect(a).to.deep.equal(identity('a'));
    expect(b).to.deep.equal(identity('b'));
    // A spec or status change made by anyone is still seen: each identity keeps its own values.
    const changed = identity('a');
    changed.spec.duration = '1h';
    changed.status.conditions = changed.status.conditions.map((c) => ({ ...c, reason: 'RenewalFailing' }));
    changed.status.spiffeID = 'spiffe://example.org/ns/prod/sa/other';
    expect(interner.identity(JSON.parse(JSON.stringify(changed)) as typeof changed)).to.deep.equal(changed);
  });

  it("keeps the previous version's name, uid and secretName where equal, every value as it arrived", () => {
    const previous = [
      undefined,
      identity('a'),
      { ...identity('a'), metadata: { ...identity('a').metadata, uid: 'recreated' } },
      { ...identity('a'), spec: { ...identity('a').spec, secretName: 'renamed' } },
      { ...identity('a'), status: { ...identity('a').status, serialNumber: 'ff', spiffeID: 'spiffe://x/y' } },
      { ...identity('a'), status: undefined },
    ];
    for (const p of previous) {
      const interner = new BundleInterner();
      const asked: string[] = [];
      interner.ownerOf = (namespace, name) => {
        asked.push(`${namespace}/${name}`);
        return p;
      };
      const raw = identity('a');
      raw.status.conditions = raw.status.conditions.map((c) => ({
        ...c,
        lastTransitionTime: '2026-11-24T08:00:01Z',
      }));
      const expected = JSON.parse(JSON.stringify(raw)) as typeof raw;
      expect(interner.identity(raw)).to.deep.equal(expected);
      expect(asked).to.deep.equal(['prod/a']);
    }
  });

  it('takes identities with missing or mistyped spec and status fields as they are', () => {
    const interner = new BundleInterner();
    const odd: Record<string, unknown>[] = [
      { metadata: {} },
      { metadata: {}, spec: null, status: null },
      { metadata: {}, spec: { serviceAccountName: 5, privateKey: null, duration: ['1h'] } },
      { metadata: {}, status: { spiffeID: {}, conditions: 'Ready' } },
      { metadata: {}, status: { conditions: [null, 3, { type: 1, status: {}, reason: 'Issued' }] } },
      {
        metadata: { name: 3, namespace: {}, creationTimestamp: 7 },
        status: { notAfter: 5, renewalTime: null },
      },
      { metadata: {}, status: { conditions: [{ lastTransitionTime: ['2026-01-01T00:00:00Z'] }] } },
    ];
    for (const o of odd) {
      const copy = JSON.parse(JSON.stringify(o)) as Parameters<typeof interner.identity>[0];
      expect(interner.identity(copy)).to.deep.equal(o);
    }
  });
});
