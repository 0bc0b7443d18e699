import { expect } from 'chai';
import fc from 'fast-check';
import {
  advance,
  caChanged,
  initialState,
  signsWithPrevious,
  type RotationFacts,
  type RotationState,
} from '../../../src/rotation/phases.ts';
import { parseState, RotationStateError, serializeState } from '../../../src/rotation/record.ts';
import { createSelfSignedCa } from '../../../src/pki/index.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const DELAY = 120_000;
const t0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);
const facts = (f: Partial<RotationFacts>): RotationFacts => ({
  secrets: 10,
  withCurrentBundle: 10,
  oldSigned: 0,
  ...f,
});

describe('CA rotation phases', () => {
  let rootsA: string;
  let rootsB: string;
  let rootsC: string;
  before(async () => {
    [rootsA, rootsB, rootsC] = (
      await Promise.all([1, 2, 3].map(() => createSelfSignedCa({ trustDomain: 'example.org' })))
    ).map((c) => c.certPem) as [string, string, string];
  });

  it('walks Stable → Preparing → Switching → Retiring → Stable, each step only when its condition holds', () => {
    let s = initialState(A, t0);
    expect(advance(s, facts({}), at(1), DELAY)).to.equal(s);
    s = caChanged(s, B, rootsA, rootsB, at(0));
    expect(s).to.include({ phase: 'Preparing', signing: A, target: B });
    expect(s.retainedRootsPem).to.contain(rootsA.trim());
    expect(signsWithPrevious(s)).to.equal(true);
    // Not every bundle has the new roots yet: nothing moves, however long it takes.
    expect(advance(s, facts({ withCurrentBundle: 9 }), at(10 * DELAY), DELAY)).to.equal(s);
    s = advance(s, facts({}), at(1000), DELAY);
    expect(s).to.include({ phase: 'Preparing', bundlesPublishedAt: at(1000).toISOString() });
    // The delay counts from the last bundle, not from the CA change.
    expect(advance(s, facts({}), at(1000 + DELAY - 1), DELAY)).to.equal(s);
    s = advance(s, facts({}), at(1000 + DELAY), DELAY);
    expect(s).to.include({ phase: 'Switching', signing: B, target: B });
    expect(signsWithPrevious(s)).to.equal(false);
    // Old SVIDs remain: the latest notAfter seen is remembered (and never goes back).
    s = advance(s, facts({ oldSigned: 3, oldSignedUntil: at(3_600_000) }), at(200_000), DELAY);
    expect(s).to.include({ phase: 'Switching', oldSignedUntil: at(3_600_000).toISOString() });
    s = advance(s, facts({ oldSigned: 1, oldSignedUntil: at(1_000_000) }), at(210_000), DELAY);
    expect(s.oldSignedUntil).to.equal(at(3_600_000).toISOString());
    s = advance(s, facts({ oldSigned: 0 }), at(300_000), DELAY);
    // The old roots stay until the last old SVID expired, plus the delay.
    expect(s).to.include({ phase: 'Retiring', retireAt: at(3_600_000 + DELAY).toISOString() });
    expect(advance(s, facts({}), at(3_600_000 + DELAY - 1), DELAY)).to.equal(s);
    s = advance(s, facts({}), at(3_600_000 + DELAY), DELAY);
    expect(s).to.include({ phase: 'Stable', signing: B, target: B, retainedRootsPem: '' });
  });

  it('retires no earlier than the delay after the last re-issue when the old SVIDs expired long ago', () => {
    let s: RotationState = { ...initialState(B, t0), phase: 'Switching', retainedRootsPem: rootsA };
    s = advance(s, facts({ oldSigned: 0 }), at(5000), DELAY);
    expect(s.retireAt).to.equal(at(5000 + DELAY).toISOString());
  });

  it('a second change while Preparing keeps the CA that signs and drops the target that never signed', () => {
    let s = caChanged(initialState(A, t0), B, rootsA, rootsB, t0);
    s = caChanged(s, C, rootsA, rootsC, at(1));
    expect(s).to.include({ phase: 'Preparing', signing: A, target: C });
    expect(s.retainedRootsPem).to.contain(rootsA.trim()).and.not.contain(rootsB.trim());
    // Undone (back to A): nothing to rotate.
    expect(caChanged(s, A, rootsA, rootsA, at(2))).to.include({ phase: 'Stable', signing: A, target: A });
  });

  it('a change while Switching or Retiring keeps the roots of every CA whose SVIDs may remain', () => {
    let s = caChanged(initialState(A, t0), B, rootsA, rootsB, t0);
    s = advance(s, facts({}), at(1), DELAY);
    s = advance(s, facts({}), at(1 + DELAY), DELAY);
    expect(s.phase).to.equal('Switching');
    s = caChanged(s, C, rootsB, rootsC, at(2 + DELAY));
    expect(s).to.include({ phase: 'Preparing', signing: B, target: C });
    expect(s.retainedRootsPem).to.contain(rootsA.trim()).and.contain(rootsB.trim());
  });

  it('the same target is no change', () => {
    const s = initialState(A, t0);
    expect(caChanged(s, A, rootsA, rootsA, at(5))).to.equal(s);
  });
});

describe('CA rotation state record', () => {
  const valid: RotationState = {
    phase: 'Retiring',
    signing: B,
    target: B,
    retainedRootsPem: 'PEM',
    since: '2030-01-01T00:00:00.000Z',
    oldSignedUntil: '2030-01-01T01:00:00.000Z',
    retireAt: '2030-01-01T01:02:00.000Z',
  };

  it('round-trips every state (property)', () => {
    const time = fc
      .integer({ min: 0, max: 4_000_000_000_000 })
      .map((ms) => new Date(ms).toISOString())
      .filter((s) => /^\d{4}-/.test(s));
    const fp = fc.constantFrom(A, B, C);
    fc.assert(
      fc.property(
        fc.constantFrom('Stable', 'Preparing', 'Switching', 'Retiring' as const),
        fp,
        fp,
        time,
        fc.option(time, { nil: undefined }),
        fc.option(time, { nil: undefined }),
        time,
        (phase, signing, target, since, published, until, retireAt) => {
          const s: RotationState = {
            phase,
            signing,
            target: phase === 'Preparing' ? target : signing,
            retainedRootsPem: 'x',
            since,
            ...(published ? { bundlesPublishedAt: published } : {}),
            ...(until ? { oldSignedUntil: until } : {}),
            ...(phase === 'Retiring' ? { retireAt } : {}),
          };
          expect(parseState(serializeState(s), 'x')).to.deep.equal(s);
        },
      ),
    );
  });

  it('refuses anything else with the reason, never half-read', () => {
    const json = (o: Record<string, unknown>) =>
      JSON.stringify({ ...JSON.parse(serializeState(valid)), ...o });
    const cases: [string, string, RegExp][] = [
      ['not JSON', '{phase:', /not valid JSON/],
      ['an array', '[]', /not an object/],
      ['null', 'null', /not an object/],
      [
        'unknown phase',
        json({ phase: 'Done' }),
        /phase must be one of Stable, Preparing, Switching, Retiring/,
      ],
      ['phase with different case', json({ phase: 'stable' }), /phase must be one of/],
      ['short fingerprint', json({ signing: 'abc', target: 'abc' }), /signing must be a SHA-256 fingerprint/],
      ['uppercase fingerprint', json({ target: B.toUpperCase() }), /target must be a SHA-256 fingerprint/],
      ['time not UTC', json({ since: '2030-01-01T00:00:00+02:00' }), /since must be an RFC 3339 UTC time/],
      ['time a number', json({ since: 0 }), /since must be an RFC 3339 UTC time/],
      ['impossible date', json({ since: '2030-02-31T00:00:00Z' }), /since must be an RFC 3339 UTC time/],
      ['Retiring without retireAt', json({ retireAt: undefined }), /retireAt must be an RFC 3339 UTC time/],
      [
        'signing a different CA while Stable',
        json({ phase: 'Stable', target: A }),
        /signing and target differ outside Preparing/,
      ],
      ['an extra field', json({ key: 'PRIVATE' }), /unknown field "key"/],
      ['prototype pollution', '{"__proto__":{"x":1},"phase":"Stable"}', /unknown field "__proto__"/],
      ['oversize', json({ since: 'x'.repeat(5000) }), /longer than 4096/],
    ];
    for (const [what, text, why] of cases) {
      expect(() => parseState(text, ''), what).to.throw(RotationStateError, why);
    }
  });

  it('throws only RotationStateError on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        try {
          parseState(text, '');
        } catch (err) {
          if (!(err instanceof RotationStateError)) throw err;
        }
      }),
    );
  });
});
