// Counting renewals against src/renewal's rule, from what a watcher sees of each identity's status: a new
// serial is a renewal of the previous SVID, due at renewalTime(notAfter, renewBefore, uid). A renewal is
// late when it shows up more than the jitter bound (min(renewBefore/10, 5 min)) after that time; an SVID
// still not renewed at the end of the window that far past its time is overdue. Pure: times are passed in.
import { MAX_JITTER_SECONDS, renewalTime } from '../src/renewal/index.ts';

export interface SeenSvid {
  key: string;
  uid: string;
  serial: string;
  notAfter: Date;
  /** status.renewalTime as written by the operator, if any. */
  renewalTime?: Date;
}

interface Tracked {
  serial: string;
  renewAtMs: number;
}

export interface LatenessSummary {
  /** New SVIDs seen inside the window that replaced an earlier one. */
  renewals: number;
  /** Of those, the ones that came more than the jitter bound after their renewal time. */
  lateRenewals: number;
  /** SVIDs not renewed at the end of the window and more than the jitter bound past their renewal time. */
  overdueAtEnd: number;
  /** The largest lateness of a renewal or an overdue SVID, in seconds (0 when none was past its time). */
  maxLatenessSeconds: number;
  /** Status renewalTime values that differ from the rule by more than a second. */
  renewalTimeMismatches: number;
  /** Renewals that showed up before their renewal time (the operator took them early). */
  earlyRenewals: number;
  /** The earliest of those, seconds before its renewal time (0 when none was early). */
  maxEarlinessSeconds: number;
}

export class RenewalLateness {
  private readonly renewBeforeSeconds: number;
  private readonly slackMs: number;
  private readonly tracked = new Map<string, Tracked>();
  private open = false;
  private renewals = 0;
  private late = 0;
  private maxLatenessMs = 0;
  private mismatches = 0;
  private early = 0;
  private maxEarlinessMs = 0;

  constructor(renewBeforeSeconds: number) {
    this.renewBeforeSeconds = renewBeforeSeconds;
    this.slackMs = Math.min(renewBeforeSeconds / 10, MAX_JITTER_SECONDS) * 1000;
  }

  /** The jitter bound, in milliseconds. */
  get boundMs(): number {
    return this.slackMs;
  }

  /** From now on new serials count as renewals. */
  openWindow(): void {
    this.open = true;
  }

  /** A Ready identity as the watch delivered it at `nowMs`; repeated serials are ignored. */
  seen(svid: SeenSvid, nowMs: number): void {
    const prev = this.tracked.get(svid.key);
    if (prev?.serial === svid.serial) return;
    if (prev && this.open) {
      this.renewals++;
      const ms = nowMs - prev.renewAtMs;
      this.maxLatenessMs = Math.max(this.maxLatenessMs, ms);
      if (ms > this.slackMs) this.late++;
      if (ms < 0) {
        this.early++;
        this.maxEarlinessMs = Math.max(this.maxEarlinessMs, -ms);
      }
    }
    const renewAtMs = renewalTime(svid.notAfter, this.renewBeforeSeconds, svid.uid).getTime();
    if (svid.renewalTime && Math.abs(svid.renewalTime.getTime() - renewAtMs) > 1000) this.mismatches++;
    this.tracked.set(svid.key, { serial: svid.serial, renewAtMs });
  }

  /** Closes the window at `endMs`: the SVIDs still waiting past their time plus the bound are overdue. */
  close(endMs: number): LatenessSummary {
    this.open = false;
    let overdue = 0;
    let maxMs = this.maxLatenessMs;
    for (const t of this.tracked.values()) {
      const ms = endMs - t.renewAtMs;
      if (ms > this.slackMs) {
        overdue++;
        maxMs = Math.max(maxMs, ms);
      }
    }
    return {
      renewals: this.renewals,
      lateRenewals: this.late,
      overdueAtEnd: overdue,
      maxLatenessSeconds: Math.max(0, maxMs) / 1000,
      renewalTimeMismatches: this.mismatches,
      earlyRenewals: this.early,
      maxEarlinessSeconds: this.maxEarlinessMs / 1000,
    };
  }
}
