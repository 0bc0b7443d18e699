import { expect } from 'chai';
import fc from 'fast-check';
import { plan, isPaced, type IdentityPolicy } from '../../../src/controller/plan.ts';
import {
  ANNOTATION_RENEW_REQUEST,
  handledRenewRequest,
  pendingRenewRequest,
  renewRequestToken,
} from '../../../src/controller/renew-request.ts';
import type { WorkloadIdentity } from '../../../src/controller/types.ts';
import { createSelfSignedCa, issueSvid, loadCa, type LoadedCa } from '../../../src/pki/index.ts';

const policy: IdentityPolicy = {
  trustDomain: 'example.org',
  clusterDomain: 'cluster.local',
  allowedDnsPatterns: [],
  bounds: { minSeconds: 60, maxSeconds: 86400 },
};

const identity = (annotation?: string, lastRenewRequest?: string): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: {
    name: 'payments',
    namespace: 'prod',
    uid: 'uid-1',
    generation: 1,
    ...(annotation === undefined ? {} : { annotations: { [ANNOTATION_RENEW_REQUEST]: annotation } }),
  },
  spec: { serviceAccountName: 'payments', secretName: 'payments-svid' },
  ...(lastRenewRequest === undefined ? {} : { status: { lastRenewRequest } }),
});

describe('renew requests (svidctl renew)', () => {
  let ca: LoadedCa;
  let owned: Parameters<typeof plan>[3];
  const now = new Date();
  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    const svid = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
    });
    owned = {
      kind: 'owned',
      svid: { certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundlePem: svid.bundlePem },
    };
  });

  // Each row: the annotation, what status says was handled, and whether a valid SVID is re-issued.
  const table: { name: string; annotation?: string; handled?: string; issue: boolean }[] = [
    { name: 'no annotation', issue: false },
    { name: 'an empty value', annotation: '', issue: false },
    { name: 'a blank value', annotation: '  \t', issue: false },
    { name: 'a new request', annotation: '2030-01-01T00:00:00Z', issue: true },
    {
      name: 'the request already honoured',
      annotation: '2030-01-01T00:00:00Z',
      handled: '2030-01-01T00:00:00Z',
      issue: false,
    },
    {
      name: 'a second request',
      annotation: '2030-01-02T00:00:00Z',
      handled: '2030-01-01T00:00:00Z',
      issue: true,
    },
    { name: 'a huge value, new', annotation: 'x'.repeat(100_000), issue: true },
    {
      name: 'a huge value, honoured',
      annotation: 'x'.repeat(100_000),
      handled: renewRequestToken('x'.repeat(100_000)),
      issue: false,
    },
    {
      name: 'a value that only looks like the recorded hash',
      annotation: `sha256:${'0'.repeat(64)}`,
      handled: renewRequestToken(`sha256:${'0'.repeat(64)}`),
      issue: false,
    },
    { name: 'Unicode and control characters', annotation: 'r\u0000e\u202enew', issue: true },
  ];
  for (const row of table) {
    it(`plans ${row.issue ? 'a re-issue' : 'to keep the SVID'} for ${row.name}`, () => {
      const p = plan(identity(row.annotation, row.handled), policy, { ok: true, ca }, owned, now);
      expect(p.action).to.equal(row.issue ? 'issue' : 'keep');
      if (p.action === 'issue') {
        expect(p.cause).to.equal('RenewRequested');
        expect(p.message).to.match(
          /^a re-issue was requested with the annotation identity\.svid\.dev\/renew-request/,
        );
        expect(p.message.length).to.be.below(300);
      }
    });
  }

  it('is not paced: a requested re-issue happens at once', () => {
    expect(isPaced('RenewRequested', new Date(now.getTime() + 60_000), now)).to.equal(false);
  });

  it('records a bounded token, honoured exactly once per distinct value (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 300 }), fc.string({ maxLength: 300 }), (a, b) => {
        fc.pre(a.trim() !== '');
        const wi = identity(a);
        expect(pendingRenewRequest(wi)).to.equal(a);
        const recorded = handledRenewRequest(wi);
        expect(recorded?.length).to.be.at.most(71);
        // After the status records it, the same value is no longer pending; any other value is.
        expect(pendingRenewRequest(identity(a, recorded))).to.equal(undefined);
        if (b.trim() !== '' && b !== a) expect(pendingRenewRequest(identity(b, recorded))).to.equal(b);
      }),
    );
  });

  it('keeps the old record when an issuance happens without a request', () => {
    expect(handledRenewRequest(identity(undefined, 'old'))).to.equal('old');
    expect(handledRenewRequest(identity(undefined))).to.equal(undefined);
  });
});
