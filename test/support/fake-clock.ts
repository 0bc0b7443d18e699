import type { Clock } from '../../src/controller-runtime/clock.ts';

/** A clock the test moves by hand; timers fire only when it is advanced past them. */
export class FakeClock implements Clock {
  t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return { id } as { unref?(): void };
  };
  clearTimeout = (t: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== (t as { id: number }).id);
  };
  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}
