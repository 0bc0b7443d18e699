import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import { withoutManagedFields } from '../../../../src/controller-runtime/managed-fields.ts';
import { BundleInterner } from '../../../../src/reconcilers/workload-identity/slim.ts';

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
