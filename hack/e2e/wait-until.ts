export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A scenario's polling wait: calls `check` every second until it returns a value (a throw counts as "not
 * yet"), and fails with `<prefix>: <what> did not happen within <s> s` once `timeoutMs` passed.
 */
export function waitUntil(prefix: string) {
  return async <T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > deadline)
        throw new Error(`${prefix}: ${what} did not happen within ${timeoutMs / 1000} s`);
      await sleep(1000);
    }
  };
}
