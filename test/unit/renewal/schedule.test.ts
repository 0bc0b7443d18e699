import { expect } from 'chai';
import fc from 'fast-check';
import {
  earliestRenewal,
  formatDuration,
  jitterSeconds,
  MAX_JITTER_SECONDS,
  parseDuration,
  renewalTime,
  resolveLifetime,
} from '../../../src/renewal/index.ts';

const bounds = { minSeconds: 600, maxSeconds: 86400 };

describe('renewal math', () => {
  it('parses and formats Go durations', () => {
    expect(parseDuration('1h')).to.equal(3600);
    expect(parseDuration('1h30m')).to.equal(5400);
    expect(parseDuration('1.5h')).to.equal(5400);
    expect(parseDuration('90s')).to.equal(90);
    expect(parseDuration('500ms')).to.equal(0.5);
    expect(formatDuration(5400)).to.equal('1h30m');
    expect(formatDuration(20)).to.equal('20s');
    for (const bad of ['', '1', 'h', '1d', '-1h', '1h x', 'one hour']) {
      expect(() => parseDuration(bad), bad).to.throw(/duration/);
    }
  });

  it('defaults to 1h and a third of the duration', () => {
    expect(resolveLifetime({}, bounds)).to.deep.equal({
      ok: true,
      lifetime: { durationSeconds: 3600, renewBeforeSeconds: 1200 },
    });
    expect(resolveLifetime({ duration: '30m' }, bounds)).to.deep.equal({
      ok: true,
      lifetime: { durationSeconds: 1800, renewBeforeSeconds: 600 },
    });
  });

  it('moves renewBefore into [min-renew-before, duration/2] and says how; refuses durations outside the bounds', () => {
    const cases: [{ duration?: string; renewBefore?: string }, number, RegExp | undefined][] = [
      [
        { duration: '1h', renewBefore: '1h' },
        1800,
        /renewBefore 1h was moved to 30m: it must be at most half the duration \(30m\); change spec.renewBefore/,
      ],
      [{ duration: '10m', renewBefore: '9m59s' }, 300, /at most half the duration/],
      [{ duration: '1h', renewBefore: '30m' }, 1800, undefined],
      [
        { duration: '1h', renewBefore: '10s' },
        60,
        /moved to 1m: it must be at least the operator's --min-renew-before \(1m\)/,
      ],
      [{ duration: '1h', renewBefore: '1m' }, 60, undefined],
    ];
    for (const [spec, want, note] of cases) {
      const r = resolveLifetime(spec, bounds);
      expect(r.ok, JSON.stringify(spec)).to.equal(true);
      if (!r.ok) continue;
      expect(r.lifetime.renewBeforeSeconds, JSON.stringify(spec)).to.equal(want);
      if (note) expect(r.lifetime.adjusted).to.match(note);
      else expect(r.lifetime.adjusted).to.equal(undefined);
    }
    // A flag may lower the minimum (tests); a duration too short for it is refused with the fix.
    const low = resolveLifetime(
      { duration: '1m', renewBefore: '20s' },
      { minSeconds: 10, maxSeconds: 3600, minRenewBeforeSeconds: 10 },
    );
    expect(low.ok && low.lifetime.renewBeforeSeconds).to.equal(20);
    const short = resolveLifetime({ duration: '1m' }, { minSeconds: 10, maxSeconds: 3600 });
    expect(short.ok === false && short.message).to.contain('too short to renew at least 1m before expiry');
    const r2 = resolveLifetime({ duration: '5m' }, bounds);
    expect(r2.ok === false && r2.message).to.contain("outside the operator's bounds [10m, 24h]");
    const r3 = resolveLifetime({ duration: '48h' }, bounds);
    expect(r3.ok === false && r3.message).to.contain('outside');
    const r4 = resolveLifetime({ duration: 'soon' }, bounds);
    expect(r4.ok === false && r4.message).to.contain('is not a duration');
  });

  it('computes renewalTime = notAfter - renewBefore - jitter, deterministic per UID', () => {
    const notAfter = new Date('2030-01-01T01:00:00Z');
    const a = renewalTime(notAfter, 1200, 'uid-a');
    expect(renewalTime(notAfter, 1200, 'uid-a').getTime()).to.equal(a.getTime());
    expect(a.getTime()).to.be.at.most(notAfter.getTime() - 1200_000);
    expect(renewalTime(notAfter, 1200, 'uid-b').getTime()).not.to.equal(a.getTime());
  });

  it('bounds jitter by a tenth of renewBefore and 5 minutes (property)', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.integer({ min: 1, max: 10 * 86400 }), (uid, renewBefore) => {
        const j = jitterSeconds(uid, renewBefore);
        return j >= 0 && j < Math.min(renewBefore / 10, MAX_JITTER_SECONDS) + 1e-9;
      }),
    );
  });

  it('never schedules renewal at or before issuance, whatever spec.renewBefore says (property)', () => {
    fc.assert(
      fc.property(
        fc.uuid(),
        fc.integer({ min: 600, max: 86400 }),
        fc.integer({ min: 1, max: 2 * 86400 }),
        fc.integer({ min: 1_700_000_000, max: 2_000_000_000 }),
        (uid, duration, renewBefore, issuedAt) => {
          const r = resolveLifetime({ duration: `${duration}s`, renewBefore: `${renewBefore}s` }, bounds);
          if (!r.ok) return false;
          const notAfter = new Date((issuedAt + duration) * 1000);
          const renewal = renewalTime(notAfter, r.lifetime.renewBeforeSeconds, uid);
          // At least 40% of the lifetime passes before renewal (renewBefore <= 50%, jitter <= 10% of it).
          return renewal.getTime() - issuedAt * 1000 >= 0.4 * duration * 1000;
        },
      ),
    );
  });

  it('spreads 1000 identities over the jitter window', () => {
    const seconds = new Set<number>();
    for (let i = 0; i < 1000; i++) seconds.add(Math.floor(jitterSeconds(`uid-${i}`, 3600)));
    expect(seconds.size).to.be.greaterThan(250);
  });

  describe('earliestRenewal (the look-ahead window)', () => {
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    const at = (s: number) => new Date(t0 + s * 1000);
    const early = (durationS: number, renewBeforeS: number, jitterS: number) =>
      (earliestRenewal(
        at(durationS - renewBeforeS - jitterS),
        at(durationS),
        durationS,
        renewBeforeS,
      ).getTime() -
        t0) /
      1000;

    const table: [string, number, number, number, number][] = [
      // name, duration, renewBefore, jitter, earliest (seconds after issuance: notAfter - duration)
      ['default renewBefore (a third): half of it ahead, at the midpoint', 3600, 1200, 0, 1800],
      ['default renewBefore with jitter: the midpoint bounds it', 3600, 1200, 100, 1800],
      ['short renewBefore: half of it ahead', 3600, 60, 6, 3504],
      ['10-minute SVIDs as the bench runs them', 600, 200, 20, 300],
      [
        'the largest renewBefore (half): renewal already before the midpoint, nothing ahead',
        600,
        300,
        30,
        270,
      ],
      ['renewBefore 40 %: the midpoint bounds it', 600, 240, 0, 300],
      ['renewBefore beyond the bounds: the renewal time itself', 600, 400, 0, 200],
      ['tiny renewBefore: half a second ahead', 600, 1, 0, 598.5],
    ];
    for (const [name, duration, renewBefore, jitter, want] of table) {
      it(name, () => expect(early(duration, renewBefore, jitter)).to.equal(want));
    }

    it('lies within [max(renewal - renewBefore/2, midpoint), renewal] (property)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 10 * 86400 }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          (duration, rbFraction, renewalFraction) => {
            const renewBefore = Math.max(0.001, duration * rbFraction);
            const renewal = at(duration * renewalFraction);
            const e = earliestRenewal(renewal, at(duration), duration, renewBefore).getTime();
            expect(e).to.be.at.most(renewal.getTime());
            expect(renewal.getTime() - e).to.be.at.most(Math.round(renewBefore * 500) + 1);
            if (e < renewal.getTime()) expect(e).to.be.at.least(t0 + (duration * 1000) / 2);
          },
        ),
      );
    });
  });
});
