import { expect } from 'chai';
import fc from 'fast-check';
import { WorkloadApiError } from '../../../packages/mtls/src/workload-api/errors.ts';
import { trustDomainFromKey, trustDomainOfId } from '../../../packages/mtls/src/workload-api/x509-context.ts';

describe('Workload API trust domain keys and SVID labels', () => {
  it('takes a federated bundle key with or without the spiffe:// scheme', () => {
    expect(trustDomainFromKey('spiffe://partner.example')).to.equal('partner.example');
    expect(trustDomainFromKey('partner.example')).to.equal('partner.example');
    expect(trustDomainOfId('spiffe://td.example/ns/a/sa/b')).to.equal('td.example');
    expect(trustDomainOfId('spiffe://td.example')).to.equal('td.example');
  });

  const badKeys = [
    '',
    'spiffe://',
    'Partner.example',
    'partner.example/path',
    'spiffe://a b',
    'a:8080',
    'x'.repeat(256),
    'üñí',
  ];
  for (const key of badKeys) {
    it(`refuses the federated bundle key ${JSON.stringify(key.slice(0, 30))}`, () => {
      expect(() => trustDomainFromKey(key))
        .to.throw(WorkloadApiError, /is not a trust domain/)
        .with.property('reason', 'malformed');
    });
  }

  const badIds = [
    '',
    'spiffe://',
    'https://td/x',
    'spiffe://TD/x',
    'spiffe://td:1/x',
    'spiffe://u@td/x',
    'td/x',
  ];
  for (const id of badIds) {
    it(`refuses the SVID label ${JSON.stringify(id)}`, () => {
      expect(() => trustDomainOfId(id)).to.throw(WorkloadApiError, /is not a SPIFFE ID/);
    });
  }

  it('never throws anything but a WorkloadApiError, and quotes at most 300 characters of the input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 1000 }), (s) => {
        for (const fn of [trustDomainFromKey, trustDomainOfId]) {
          try {
            fn(s);
          } catch (err) {
            expect(err).to.be.instanceOf(WorkloadApiError);
            expect((err as Error).message.length).to.be.below(400);
          }
        }
      }),
    );
  });
});
