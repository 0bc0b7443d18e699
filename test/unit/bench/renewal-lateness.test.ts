import { expect } from 'chai';
import { RenewalLateness } from '../../../bench/renewal-lateness.ts';
import { renewalTime } from '../../../src/renewal/index.ts';

// 10-minute SVIDs with the default renewBefore (a third): renewal 200 s + jitter before notAfter, and a
// jitter bound of 20 s.
const RENEW_BEFORE = 200;
const T0 = Date.parse('2026-11-24T07:00:00Z');
const svid = (key: string, serial: string, notAfterMs: number) => ({
  key,
  uid: `uid-${key}`,
  serial,
  notAfter: new Date(notAfterMs),
});
const dueAt = (key: string, notAfterMs: number) =>
  renewalTime(new Date(notAfterMs), RENEW_BEFORE, `uid-${key}`).getTime();

describe('bench: renewal lateness counting', () => {
  it('counts a renewal late only past its renewal time plus the jitter bound', () => {
    const l = new RenewalLateness(RENEW_BEFORE);
    expect(l.boundMs).to.equal(20_000);
    const na = T0 + 600_000;
    for (const k of ['early', 'onTime', 'atBound', 'late']) l.seen(svid(k, `${k}-1`, na), T0);
    l.openWindow();
    l.seen(svid('early', 'early-2', na + 400_000), dueAt('early', na) - 5_000);
    l.seen(svid('onTime', 'onTime-2', na + 400_000), dueAt('onTime', na) + 3_000);
    l.seen(svid('atBound', 'atBound-2', na + 400_000), dueAt('atBound', na) + 20_000);
    l.seen(svid('late', 'late-2', na + 400_000), dueAt('late', na) + 20_001);
    const s = l.close(T0 + 700_000);
    expect(s).to.deep.equal({
      renewals: 4,
      lateRenewals: 1,
      overdueAtEnd: 0,
      maxLatenessSeconds: 20.001,
      renewalTimeMismatches: 0,
      earlyRenewals: 1,
      maxEarlinessSeconds: 5,
    });
  });

  it('keeps renewals that came late apart from SVIDs still overdue at the end, so late never exceeds renewals', () => {
    const l = new RenewalLateness(RENEW_BEFORE);
    const na = T0 + 600_000;
    for (let i = 0; i < 10; i++) l.seen(svid(`k${i}`, `s${i}`, na), T0);
    l.openWindow();
    // Two renewed 30 s late; the other eight never renewed.
    for (const i of [0, 1]) l.seen(svid(`k${i}`, `s${i}-2`, na + 600_000), dueAt(`k${i}`, na) + 30_000);
    const end = na; // every first SVID's renewal time (at most 220 s before notAfter) is > 20 s past
    const s = l.close(end);
    expect(s.renewals).to.equal(2);
    expect(s.lateRenewals).to.equal(2);
    expect(s.overdueAtEnd).to.equal(8);
    expect(s.lateRenewals).to.be.at.most(s.renewals);
    const worst = Math.max(...[2, 3, 4, 5, 6, 7, 8, 9].map((i) => end - dueAt(`k${i}`, na)));
    expect(s.maxLatenessSeconds).to.equal(worst / 1000);
  });

  it('ignores repeated deliveries of the same serial and changes seen before the window opened', () => {
    const l = new RenewalLateness(RENEW_BEFORE);
    const na = T0 + 600_000;
    l.seen(svid('a', 'a-1', na - 600_000), T0);
    // Renewed (very late) before the window: not counted.
    l.seen(svid('a', 'a-2', na + 600_000), T0 + 500_000);
    l.openWindow();
    for (let i = 0; i < 5; i++) l.seen(svid('a', 'a-2', na + 600_000), T0 + 500_000 + i);
    const s = l.close(T0 + 501_000);
    expect(s.renewals).to.equal(0);
    expect(s.lateRenewals).to.equal(0);
    expect(s.overdueAtEnd).to.equal(0);
    expect(s.maxLatenessSeconds).to.equal(0);
  });

  it('an SVID overdue by exactly the bound at the end is not overdue; one millisecond more is', () => {
    const na = T0 + 600_000;
    const at = dueAt('a', na) + 20_000;
    for (const [end, overdue] of [
      [at, 0],
      [at + 1, 1],
    ] as const) {
      const l = new RenewalLateness(RENEW_BEFORE);
      l.seen(svid('a', 'a-1', na), T0);
      l.openWindow();
      expect(l.close(end).overdueAtEnd).to.equal(overdue);
    }
  });

  it('counts status renewalTime values that disagree with the rule by more than a second', () => {
    const l = new RenewalLateness(RENEW_BEFORE);
    const na = T0 + 600_000;
    l.seen({ ...svid('ok', 'o', na), renewalTime: new Date(dueAt('ok', na) + 999) }, T0);
    l.seen({ ...svid('bad', 'b', na), renewalTime: new Date(dueAt('bad', na) + 1001) }, T0);
    expect(l.close(T0).renewalTimeMismatches).to.equal(1);
  });

  it('caps the bound at 5 minutes for long renewBefore values', () => {
    expect(new RenewalLateness(24 * 3600).boundMs).to.equal(300_000);
    expect(new RenewalLateness(60).boundMs).to.equal(6_000);
  });
});
