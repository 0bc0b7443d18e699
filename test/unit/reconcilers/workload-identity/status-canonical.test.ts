import { expect } from 'chai';
import fc from 'fast-check';
import { canonical, rfc3339, statusEqual } from '../../../../src/reconcilers/workload-identity/status.ts';
import type { WorkloadIdentityStatus } from '../../../../src/reconcilers/workload-identity/types.ts';

/** The previous canonical form (a JSON.stringify replacer that sorted a copy of every object): the oracle. */
function replacerCanonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

// Integer-like keys are left out of the comparison with the oracle only: Object.fromEntries put them first in
// numeric order whatever the sort said, so the oracle's order for them is not code-unit order.
const key = fc.string({ maxLength: 6 }).filter((k) => !/^(0|[1-9]\d*)$/.test(k));
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.constant(undefined),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 8 }),
    fc.date(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
  ),
}));

const reversed = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).reverse());

describe('workload identity status: canonical JSON and statusEqual', () => {
  it('gives what the previous replacer-based form gave, for any JSON-like value', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(canonical(v)).to.equal(replacerCanonical(v) ?? 'null');
      }),
      { numRuns: 2000 },
    );
  });

  it('does not depend on the order keys were added in, integer-like keys included', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 4 }), value, { maxKeys: 8 }), (o) => {
        expect(canonical(reversed(o))).to.equal(canonical(o));
      }),
    );
    expect(canonical({ '10': 1, '9': 2, b: 3, a: 4 })).to.equal('{"10":1,"9":2,"a":4,"b":3}');
  });

  const status = (over: Partial<WorkloadIdentityStatus> = {}): WorkloadIdentityStatus => ({
    serialNumber: '0a',
    notAfter: '2026-11-24T19:00:00Z',
    conditions: [{ type: 'Ready', status: 'True', reason: 'Issued', message: 'ok', lastTransitionTime: 'x' }],
    ...over,
  });

  const cases: {
    name: string;
    a: WorkloadIdentityStatus | undefined;
    b: WorkloadIdentityStatus;
    equal: boolean;
  }[] = [
    { name: 'the same status', a: status(), b: status(), equal: true },
    {
      name: 'the same fields in another order',
      a: reversed(status() as Record<string, unknown>) as WorkloadIdentityStatus,
      b: status(),
      equal: true,
    },
    {
      name: 'an undefined field against a missing one',
      a: status({ renewalTime: undefined }),
      b: status(),
      equal: true,
    },
    { name: 'no status against an empty one', a: undefined, b: {}, equal: true },
    { name: 'another serial', a: status({ serialNumber: '0b' }), b: status(), equal: false },
    {
      name: 'a condition message changed',
      a: status({
        conditions: [
          { type: 'Ready', status: 'True', reason: 'Issued', message: 'other', lastTransitionTime: 'x' },
        ],
      }),
      b: status(),
      equal: false,
    },
    { name: 'a field more', a: status({ renewalTime: '2026-11-24T18:50:00Z' }), b: status(), equal: false },
    { name: 'no status against one', a: undefined, b: status(), equal: false },
  ];
  for (const c of cases)
    it(`statusEqual: ${c.name} → ${c.equal}`, () => {
      expect(statusEqual(c.a, c.b)).to.equal(c.equal);
    });

  it('rfc3339 gives whole seconds as the Date-rounding form did, for any valid time', () => {
    const rounded = (d: Date) =>
      new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    fc.assert(
      fc.property(fc.date({ noInvalidDate: true }), (d) => {
        expect(rfc3339(d)).to.equal(rounded(d));
      }),
      { numRuns: 2000 },
    );
    expect(rfc3339(new Date('2026-11-24T18:20:31.999Z'))).to.equal('2026-11-24T18:20:31Z');
    expect(rfc3339(new Date(-500))).to.equal('1969-12-31T23:59:59Z');
    expect(rfc3339(new Date('+012026-01-01T00:00:00.250Z'))).to.equal('+012026-01-01T00:00:00Z');
  });
});
