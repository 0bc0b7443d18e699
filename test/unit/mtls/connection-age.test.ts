import { expect } from 'chai';
import fc from 'fast-check';
import {
  checkMaxConnectionAge,
  maxConnectionAgeMs,
  MAX_TIMER_MS,
  timerDelay,
} from '../../../packages/mtls/src/connection-age.ts';
import type { X509Source } from '../../../packages/mtls/src/index.ts';

/** Only what the age rule reads of a source: the current SVID's validity. */
const sourceLiving = (ms: number) =>
  ({
    current: () => ({ notBefore: new Date(0), notAfter: new Date(ms) }),
  }) as unknown as X509Source;

describe('connection age rule (maxConnectionAgeMs)', () => {
  it('accepts leaving it out and any positive, finite number of milliseconds', () => {
    expect(checkMaxConnectionAge(undefined, 'x')).to.equal(undefined);
    for (const ok of [1, 0.5, 300, 60_000, 24 * 3600_000, MAX_TIMER_MS + 1, Number.MAX_VALUE]) {
      expect(checkMaxConnectionAge(ok, 'x')).to.equal(ok);
    }
  });

  // [value, how the test is named, how the message shows it]
  const refused: [unknown, string, string][] = [
    [0, '0', '0'],
    [-1, '-1', '-1'],
    [-0, '-0', '0'],
    [Number.NaN, 'NaN', 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity', 'Infinity'],
    [Number.NEGATIVE_INFINITY, '-Infinity', '-Infinity'],
    ['60000', 'the string "60000"', 'string'],
    [null, 'null', 'object'],
    [{}, 'an object', 'object'],
    [60_000n, 'a bigint', 'bigint'],
    [true, 'true', 'boolean'],
  ];
  for (const [value, name, shown] of refused) {
    it(`refuses ${name}, saying what is wrong and how to fix it`, () => {
      expect(() => checkMaxConnectionAge(value, 'grpcServerCredentials')).to.throw(
        TypeError,
        `grpcServerCredentials: maxConnectionAgeMs must be a positive, finite number of milliseconds (got ${shown}); leave it out for the default, a quarter of the SVID lifetime`,
      );
    });
  }

  it('property: whatever it accepts is a positive finite number, returned unchanged', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        let got: number | undefined;
        try {
          got = checkMaxConnectionAge(value, 'x');
        } catch (err) {
          expect(err).to.be.instanceOf(TypeError);
          return;
        }
        if (value === undefined) expect(got).to.equal(undefined);
        else {
          expect(got).to.equal(value);
          expect(Number.isFinite(got) && (got as number) > 0).to.equal(true);
        }
      }),
    );
  });

  it('defaults to a quarter of the current SVID lifetime; a configured age wins', () => {
    expect(maxConnectionAgeMs(sourceLiving(3600_000), undefined)).to.equal(900_000);
    expect(maxConnectionAgeMs(sourceLiving(20_000), undefined)).to.equal(5_000);
    expect(maxConnectionAgeMs(sourceLiving(3600_000), 300)).to.equal(300);
  });

  it('timer delays stay within what setTimeout honours (a longer one would fire after 1 ms)', () => {
    const year = 365 * 24 * 3600_000;
    // An SVID of a year: the default age (91 days) is past setTimeout's limit (24.8 days).
    expect(timerDelay(maxConnectionAgeMs(sourceLiving(year), undefined))).to.equal(MAX_TIMER_MS);
    expect(timerDelay(900_000)).to.equal(900_000);
    expect(timerDelay(-5)).to.equal(0);
    expect(MAX_TIMER_MS).to.equal(2_147_483_647);
  });
});
