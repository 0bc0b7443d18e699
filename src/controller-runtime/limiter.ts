/** A token bucket: `take()` resolves when a token is free, so callers proceed at most `ratePerSecond` on average. */
export class RateLimiter {
  private readonly intervalMs: number;
  private readonly burst: number;
  private tokens: number;
  private last = Date.now();
  private chain: Promise<void> = Promise.resolve();

  constructor(ratePerSecond: number, burst = Math.max(1, Math.ceil(ratePerSecond))) {
    this.intervalMs = 1000 / ratePerSecond;
    this.burst = burst;
    this.tokens = burst;
  }

  take(): Promise<void> {
    const next = this.chain.then(async () => {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
      this.last = now;
      if (this.tokens < 1) {
        const wait = (1 - this.tokens) * this.intervalMs;
        await new Promise((resolve) => setTimeout(resolve, wait));
        this.tokens = 1;
        this.last = Date.now();
      }
      this.tokens -= 1;
    });
    this.chain = next;
    return next;
  }
}
