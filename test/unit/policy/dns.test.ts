import { expect } from 'chai';
import fc from 'fast-check';
import { checkDnsNames, dnsNameProblem, patternProblem } from '../../../src/policy/index.ts';

const policy = { namespace: 'prod', clusterDomain: 'cluster.local', allowedPatterns: [] as string[] };
const ok = (names: string[], p = policy) => checkDnsNames(names, p).length === 0;
const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/);

describe('DNS policy', () => {
  it('allows a single label and names under the own namespace by default', () => {
    expect(ok(['payments', 'payments.prod.svc', 'payments.prod.svc.cluster.local', 'a.b.prod.svc'])).to.equal(
      true,
    );
  });

  it('refuses names of another namespace and names outside the cluster, saying which', () => {
    const [other] = checkDnsNames(['payments.billing.svc'], policy);
    expect(other?.message).to.contain('belongs to namespace "billing", not "prod"');
    const [outside] = checkDnsNames(['payments.example.com'], policy);
    expect(outside?.message).to.contain('--allowed-dns-pattern');
    expect(ok(['payments.prod.svc.other.domain'])).to.equal(false);
    expect(ok(['prod.svc'])).to.equal(false);
  });

  it('refuses wildcards unless an admin pattern allows them', () => {
    const [w] = checkDnsNames(['*.prod.svc'], policy);
    expect(w?.message).to.contain('wildcard DNS name "*.prod.svc" is not allowed');
    expect(ok(['*.example.com'], { ...policy, allowedPatterns: ['*.example.com'] })).to.equal(true);
    expect(ok(['api.example.com'], { ...policy, allowedPatterns: ['*.example.com'] })).to.equal(true);
    expect(ok(['example.com'], { ...policy, allowedPatterns: ['*.example.com'] })).to.equal(false);
    expect(ok(['api.example.com'], { ...policy, allowedPatterns: ['api.example.com'] })).to.equal(true);
  });

  it('validates RFC 1123 syntax with a message per rule', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['Payments', /uppercase/],
      ['a..b', /empty label/],
      ['-a.prod.svc', /must not start or end with "-"/],
      ['a_b', /may only hold a-z, 0-9 and "-"/],
      ['a.', /must not end with "\."/],
      [`${'a'.repeat(64)}.prod.svc`, /longer than 63/],
      [`${'a.'.repeat(127)}a`, /at most 253/],
      ['a.*.prod.svc', /wildcard that is not the whole leftmost label/],
      ['*', /bare wildcard/],
      ['p\u0430yments', /may only hold/],
    ];
    for (const [name, message] of cases) expect(dnsNameProblem(name), name).to.match(message);
  });

  it('validates admin patterns', () => {
    expect(patternProblem('*.com')).to.contain('top-level domain');
    expect(patternProblem('*.example.com')).to.equal(undefined);
    expect(patternProblem('Bad')).to.contain('uppercase');
  });

  it('allows any valid name under the own namespace, and none under another (property)', () => {
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 3 }), label, (labels, ns) => {
        const own = `${labels.join('.')}.${ns}.svc`;
        const p = { ...policy, namespace: ns };
        const other = `${labels.join('.')}.x${ns}.svc`;
        return ok([own], p) && ok([`${own}.cluster.local`], p) && !ok([other], p);
      }),
    );
  });

  it('never allows a name with a character outside [a-z0-9.-] (property)', () => {
    const bad = fc.string({ minLength: 1, maxLength: 1 }).filter((c) => !/[a-z0-9.\-*]/.test(c));
    fc.assert(fc.property(label, bad, (l, c) => !ok([`${l}${c}`]) && !ok([`${l}${c}.prod.svc`])));
  });
});
