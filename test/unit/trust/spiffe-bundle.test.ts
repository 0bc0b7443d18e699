import { expect } from 'chai';
import fc from 'fast-check';
import { X509Certificate } from 'node:crypto';
import { createSelfSignedCa, type KeySpec } from '../../../src/pki/index.ts';
import { nextSpiffeBundle, parseSpiffeBundle, rootsToJwks } from '../../../src/trust/spiffe-bundle.ts';

describe('SPIFFE bundle (JWKS)', () => {
  const roots: string[] = [];
  const specs: KeySpec[] = [
    { algorithm: 'ECDSA', size: 256 },
    { algorithm: 'RSA', size: 2048 },
    { algorithm: 'Ed25519' },
  ];
  before(async () => {
    for (const key of specs)
      roots.push((await createSelfSignedCa({ trustDomain: 'example.org', key })).certPem);
  });

  it('has one x509-svid key per root with the root as its only x5c, and the key of that root', () => {
    const keys = rootsToJwks(roots.join('') + roots[0]);
    expect(keys).to.have.length(3);
    expect(keys.map((k) => k.kty)).to.deep.equal(['EC', 'RSA', 'OKP']);
    for (const [i, k] of keys.entries()) {
      expect(k.use).to.equal('x509-svid');
      expect(k.x5c).to.have.length(1);
      const cert = new X509Certificate(Buffer.from(k.x5c[0], 'base64'));
      expect(cert.toString()).to.equal(new X509Certificate(roots[i] ?? '').toString());
    }
    expect(keys[0]).to.include.keys('crv', 'x', 'y');
    expect(keys[1]).to.include.keys('n', 'e');
  });

  it('keeps the sequence while the roots are the same and increases it on every change', () => {
    const a = nextSpiffeBundle(roots[0] ?? '', undefined, 300);
    expect(a.spiffe_sequence).to.equal(1);
    expect(a.spiffe_refresh_hint).to.equal(300);
    const same = nextSpiffeBundle(roots[0] ?? '', a, 300);
    expect(same.spiffe_sequence).to.equal(1);
    const overlap = nextSpiffeBundle((roots[0] ?? '') + roots[1], same, 300);
    expect(overlap.spiffe_sequence).to.equal(2);
    const after = nextSpiffeBundle(roots[1] ?? '', overlap, 300);
    expect(after.spiffe_sequence).to.equal(3);
    expect(after.keys).to.have.length(1);
  });

  it('parses what it publishes, as a SPIFFE consumer would', () => {
    const b = nextSpiffeBundle(roots.join(''), undefined, 60);
    const parsed = parseSpiffeBundle(JSON.stringify(b));
    expect(parsed).to.deep.equal({ bundle: b });
  });

  const broken: { name: string; doc: unknown; problem: RegExp }[] = [
    { name: 'an array', doc: [], problem: /not a JSON object/ },
    {
      name: 'keys missing',
      doc: { spiffe_sequence: 1, spiffe_refresh_hint: 1 },
      problem: /"keys" is not an array/,
    },
    {
      name: 'a negative sequence',
      doc: { keys: [], spiffe_sequence: -1, spiffe_refresh_hint: 1 },
      problem: /sequence/,
    },
    {
      name: 'a fractional sequence',
      doc: { keys: [], spiffe_sequence: 1.5, spiffe_refresh_hint: 1 },
      problem: /sequence/,
    },
    {
      name: 'a zero refresh hint',
      doc: { keys: [], spiffe_sequence: 1, spiffe_refresh_hint: 0 },
      problem: /refresh_hint/,
    },
    {
      name: 'two x5c entries',
      doc: {
        keys: [{ use: 'x509-svid', kty: 'EC', x5c: ['a', 'b'] }],
        spiffe_sequence: 1,
        spiffe_refresh_hint: 1,
      },
      problem: /exactly one x5c/,
    },
    {
      name: 'x5c that is not a certificate',
      doc: {
        keys: [{ use: 'x509-svid', kty: 'EC', x5c: ['AAAA'] }],
        spiffe_sequence: 1,
        spiffe_refresh_hint: 1,
      },
      problem: /not a DER certificate/,
    },
  ];
  for (const t of broken) {
    it(`refuses a bundle with ${t.name}`, () => {
      const r = parseSpiffeBundle(JSON.stringify(t.doc));
      expect(r).to.have.property('problem').that.matches(t.problem);
    });
  }

  it('refuses a key whose JWK does not match its certificate', () => {
    const b = nextSpiffeBundle(roots.join(''), undefined, 60);
    const other = rootsToJwks(roots[0] ?? '')[0];
    const k = b.keys[0];
    if (!k || !other) throw new Error('no keys');
    k.x = other.y ?? '';
    expect(parseSpiffeBundle(JSON.stringify(b))).to.deep.equal({
      problem: 'keys[0].x does not match its certificate',
    });
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const r = parseSpiffeBundle(text);
        expect(r).to.satisfy((x: object) => 'bundle' in x || 'problem' in x);
      }),
      { numRuns: 1000 },
    );
  });
});
