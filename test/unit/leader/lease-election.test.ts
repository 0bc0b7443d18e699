import { expect } from 'chai';
import fc from 'fast-check';
import * as k8s from '@kubernetes/client-node';
import {
  acquireDelayMs,
  decide,
  expiresInMs,
  observe,
  recordOf,
  releasedRecord,
  validateTimings,
  type LeaderRecord,
  type Observation,
} from '../../../src/leader/lease-election.ts';

const wall = new Date('2030-01-01T00:00:00.000Z');
const held = (holder: string, extra: Partial<LeaderRecord> = {}): LeaderRecord => ({
  holderIdentity: holder,
  leaseDurationSeconds: 15,
  acquireTime: '2029-12-31T23:00:00.000000Z',
  renewTime: '2029-12-31T23:59:59.000000Z',
  leaderTransitions: 4,
  ...extra,
});

const decideAt = (
  observed: Observation | undefined,
  identity: string,
  now: number,
  leaseDurationMs: number,
  exists = observed !== undefined,
) => decide({ observed, exists, identity, now, wallClock: wall, leaseDurationMs });

describe('leader election decisions', () => {
  it("accepts client-go's defaults and the shortened test timings, and refuses unsafe ones", () => {
    expect(() =>
      validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ).not.to.throw();
    expect(() =>
      validateTimings({ leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 }),
    ).not.to.throw();
    const bad: [number, number, number, RegExp][] = [
      [10_000, 10_000, 2_000, /leaseDurationMs .* greater than renewDeadlineMs/],
      [15_000, 2_400, 2_000, /renewDeadlineMs .* greater than 1.2 × retryPeriodMs/],
      [15_500, 10_000, 2_000, /whole seconds/],
      [15_000, 10_000, 0, /retryPeriodMs must be positive/],
      [Number.NaN, 10_000, 2_000, /leaseDurationMs must be positive/],
    ];
    for (const [leaseDurationMs, renewDeadlineMs, retryPeriodMs, message] of bad) {
      expect(() => validateTimings({ leaseDurationMs, renewDeadlineMs, retryPeriodMs })).to.throw(
        RangeError,
        message,
      );
    }
  });

  it('reads a Lease as the API server returns it (MicroTime as strings) and as client-node sends it (Dates)', () => {
    const fromServer = recordOf({
      spec: {
        holderIdentity: 'a',
        leaseDurationSeconds: 15,
        renewTime: '2030-01-01T00:00:00.123456Z' as unknown as k8s.V1MicroTime,
        leaseTransitions: 2,
      },
    });
    expect(fromServer).to.deep.equal({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      acquireTime: undefined,
      renewTime: '2030-01-01T00:00:00.123456Z',
      leaderTransitions: 2,
    });
    const sent = recordOf({ spec: { renewTime: new k8s.V1MicroTime('2030-01-01T00:00:00.123Z') } });
    expect(sent.renewTime).to.equal('2030-01-01T00:00:00.123000Z');
    expect(recordOf({})).to.deep.include({
      holderIdentity: '',
      leaseDurationSeconds: 0,
      leaderTransitions: 0,
    });
  });

  it('times a record from when it was first seen, and restarts when it changes', () => {
    const first = observe(undefined, held('a'), 100);
    expect(observe(first, held('a'), 5_000)).to.equal(first);
    const renewed = observe(first, held('a', { renewTime: '2030-01-01T00:00:01.000000Z' }), 5_000);
    expect(renewed.at).to.equal(5_000);
    expect(expiresInMs(renewed, 6_000)).to.equal(14_000);
  });

  it('creates a missing Lease with no transitions', () => {
    expect(decideAt(undefined, 'me', 0, 15_000)).to.deep.equal({
      action: 'create',
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 15,
        acquireTime: wall.toISOString(),
        renewTime: wall.toISOString(),
        leaderTransitions: 0,
      },
    });
  });

  it("waits out another holder's lease by the local clock, whatever its renewTime says", () => {
    // renewTime is from 2001: a candidate comparing it with its own clock would take over at once.
    const stale = observe(undefined, held('other', { renewTime: '2001-01-01T00:00:00.000000Z' }), 1_000);
    expect(decideAt(stale, 'me', 1_000, 15_000)).to.deep.equal({
      action: 'wait',
      holder: 'other',
      expiresInMs: 15_000,
    });
    expect(decideAt(stale, 'me', 15_999, 15_000)).to.include({ action: 'wait', expiresInMs: 1 });
    // renewTime far in the future must not extend the wait either.
    const future = observe(undefined, held('other', { renewTime: '2099-01-01T00:00:00.000000Z' }), 1_000);
    expect(decideAt(future, 'me', 16_000, 15_000).action).to.equal('acquire');
  });

  it('uses the leaseDurationSeconds written in the record, not its own setting', () => {
    const short = observe(undefined, held('other', { leaseDurationSeconds: 1 }), 0);
    expect(decideAt(short, 'me', 999, 15_000).action).to.equal('wait');
    expect(decideAt(short, 'me', 1_000, 15_000).action).to.equal('acquire');
  });

  it('acquires an expired lease, counting one more transition and starting a new term', () => {
    const obs = observe(undefined, held('other'), 0);
    expect(decideAt(obs, 'me', 15_000, 3_000)).to.deep.equal({
      action: 'acquire',
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 3,
        acquireTime: wall.toISOString(),
        renewTime: wall.toISOString(),
        leaderTransitions: 5,
      },
    });
  });

  it('acquires a released lease (no holder) at once', () => {
    const released = observe(undefined, releasedRecord(held('other'), wall), 0);
    expect(released.record).to.include({ holderIdentity: '', leaseDurationSeconds: 1, leaderTransitions: 4 });
    const d = decideAt(released, 'me', 0, 15_000);
    expect(d.action).to.equal('acquire');
    expect(d.action === 'acquire' && d.record.leaderTransitions).to.equal(5);
  });

  it('renews its own lease keeping acquireTime and transitions, even after it expired locally', () => {
    const own = observe(undefined, held('me'), 0);
    for (const now of [0, 60_000]) {
      expect(decideAt(own, 'me', now, 15_000)).to.deep.equal({
        action: 'renew',
        record: {
          holderIdentity: 'me',
          leaseDurationSeconds: 15,
          acquireTime: '2029-12-31T23:00:00.000000Z',
          renewTime: wall.toISOString(),
          leaderTransitions: 4,
        },
      });
    }
  });

  it('recreates a deleted Lease only once the holder it last saw would have expired', () => {
    const other = observe(undefined, held('other'), 0);
    expect(decideAt(other, 'me', 14_999, 15_000, false)).to.deep.equal({
      action: 'wait',
      holder: 'other',
      expiresInMs: 1,
    });
    const late = decideAt(other, 'me', 15_000, 15_000, false);
    expect(late.action).to.equal('create');
    expect(late.action === 'create' && late.record.leaderTransitions).to.equal(5);
    // Its own Lease deleted: the leader puts it back at once and keeps counting where it was.
    const own = decideAt(observe(undefined, held('me'), 0), 'me', 0, 15_000, false);
    expect(own.action).to.equal('create');
    expect(own.action === 'create' && own.record).to.include({ holderIdentity: 'me', leaderTransitions: 4 });
    // A released Lease deleted: nobody is working, so nobody needs to be waited for.
    const released = observe(undefined, releasedRecord(held('other'), wall), 0);
    expect(decideAt(released, 'me', 0, 15_000, false).action).to.equal('create');
  });

  it("spaces acquisition attempts like client-go's JitterUntil (1 to 2.2 retry periods)", () => {
    expect(acquireDelayMs(2_000, 0)).to.equal(2_000);
    expect(acquireDelayMs(2_000, 0.5)).to.equal(3_200);
    expect(acquireDelayMs(2_000, 1)).to.equal(4_400);
  });

  it('never lets a standby acquire before the leader has passed its renew deadline (property)', () => {
    // The leader sent its last successful renewal at `sentAt` and steps down at sentAt + renewDeadline.
    // A standby can only have seen that record at or after sentAt; at the leader's deadline it must wait.
    const timings = fc
      .record({
        leaseSeconds: fc.integer({ min: 1, max: 120 }),
        renewFraction: fc.double({ min: 0.05, max: 0.999, noNaN: true }),
        retryFraction: fc.double({ min: 0.01, max: 1, noNaN: true }),
      })
      .map(({ leaseSeconds, renewFraction, retryFraction }) => {
        const leaseDurationMs = leaseSeconds * 1000;
        const renewDeadlineMs = Math.max(1, Math.floor(leaseDurationMs * renewFraction));
        return {
          leaseDurationMs,
          renewDeadlineMs,
          retryPeriodMs: (renewDeadlineMs / 1.2) * retryFraction * 0.99,
        };
      })
      .filter((t) => {
        try {
          validateTimings(t);
          return true;
        } catch {
          return false;
        }
      });
    fc.assert(
      fc.property(timings, fc.nat(1e9), fc.nat(1e6), (t, sentAt, seenAfter) => {
        const record = held('leader', { leaseDurationSeconds: t.leaseDurationMs / 1000 });
        const seen = observe(undefined, record, sentAt + Math.min(seenAfter, t.renewDeadlineMs));
        return decideAt(seen, 'standby', sentAt + t.renewDeadlineMs, t.leaseDurationMs).action === 'wait';
      }),
    );
  });
});
