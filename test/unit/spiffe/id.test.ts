import { expect } from 'chai';
import fc from 'fast-check';
import {
  buildSpiffeId,
  isSpiffeId,
  parseSpiffeId,
  SpiffeIdError,
  validateTrustDomain,
} from '../../../src/spiffe/index.ts';

const tdChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split(''));
const segChar = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'.split(''),
);
const trustDomain = fc.string({ unit: tdChar, minLength: 1, maxLength: 60 });
const segment = fc
  .string({ unit: segChar, minLength: 1, maxLength: 20 })
  .filter((s) => s !== '.' && s !== '..');

describe('SPIFFE IDs', () => {
  it('builds spiffe://<td>/ns/<ns>/sa/<sa>', () => {
    expect(buildSpiffeId('example.org', 'prod', 'payments')).to.equal(
      'spiffe://example.org/ns/prod/sa/payments',
    );
  });

  it('rejects each broken rule with a precise message', () => {
    const cases: [string, RegExp][] = [
      ['http://example.org/a', /must start with "spiffe:\/\/"/],
      ['SPIFFE://example.org/a', /must start with "spiffe:\/\/"/],
      ['spiffe://', /trust domain is empty/],
      ['spiffe://Example.org/a', /contains "E": only lowercase/],
      ['spiffe://example.org:8080/a', /must not contain a port/],
      ['spiffe://user@example.org/a', /must not contain user info/],
      ['spiffe://example.org/', /must not end with "\/"/],
      ['spiffe://example.org//a', /empty segment/],
      ['spiffe://example.org/a/../b', /has a "\.\." segment/],
      ['spiffe://example.org/./b', /has a "\." segment/],
      ['spiffe://example.org/a b', /contains " "/],
      ['spiffe://example.org/a%20b', /contains "%"/],
      ['spiffe://example.org/a?x=1', /query or fragment/],
      ['spiffe://example.org/a#f', /query or fragment/],
      [`spiffe://${'a'.repeat(256)}/x`, /at most 255 are allowed/],
      [`spiffe://example.org/${'a'.repeat(2048)}`, /at most 2048 are allowed/],
    ];
    for (const [id, message] of cases) {
      expect(() => parseSpiffeId(id), id).to.throw(SpiffeIdError, message);
    }
  });

  it('rejects namespaces and service accounts that are not Kubernetes names', () => {
    expect(() => buildSpiffeId('example.org', 'Prod', 'a')).to.throw(/not a valid Kubernetes namespace/);
    expect(() => buildSpiffeId('example.org', 'prod', 'a/b')).to.throw(/service account "a\/b"/);
    expect(() => buildSpiffeId('example.org', 'prod', '')).to.throw(/service account ""/);
    expect(() => buildSpiffeId('EXAMPLE', 'prod', 'a')).to.throw(/only lowercase/);
    expect(() => validateTrustDomain('exa mple')).to.throw(/contains " "/);
  });

  it('accepts every ID built from valid parts, and parses it back (property)', () => {
    fc.assert(
      fc.property(trustDomain, fc.array(segment, { maxLength: 6 }), (td, segments) => {
        const id = `spiffe://${td}${segments.map((s) => `/${s}`).join('')}`;
        const parsed = parseSpiffeId(id);
        return parsed.trustDomain === td && parsed.path === segments.map((s) => `/${s}`).join('');
      }),
    );
  });

  it('never accepts a character outside the allowed sets (property)', () => {
    const bad = fc.string({ minLength: 1, maxLength: 1 }).filter((c) => !/[a-zA-Z0-9._\-/]/.test(c));
    fc.assert(
      fc.property(trustDomain, segment, bad, fc.nat(20), (td, seg, c, at) => {
        const i = at % (seg.length + 1);
        return !isSpiffeId(`spiffe://${td}/${seg.slice(0, i)}${c}${seg.slice(i)}`);
      }),
    );
  });

  it('accepts exactly the namespace/service-account IDs of valid Kubernetes names (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
    fc.assert(fc.property(label, label, (ns, sa) => isSpiffeId(buildSpiffeId('cluster.local', ns, sa))));
  });
});
