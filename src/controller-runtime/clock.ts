// The time source of the controller machinery (the work queue's schedule, the issuance pacer), injected so
// that unit tests drive time by hand instead of sleeping.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { unref?(): void };
  clearTimeout(t: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};
