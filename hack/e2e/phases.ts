/**
 * Runs a scenario's named phases, logging each start and how long it took, and keeps those times (seconds,
 * one decimal) for the scenario's result.
 */
export function phaseTimer(log: (line: string) => void): {
  phase: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  phaseSeconds: Record<string, number>;
} {
  const phaseSeconds: Record<string, number> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`phase ${name}`);
    const start = Date.now();
    try {
      return await fn();
    } finally {
      phaseSeconds[name] = Math.round((Date.now() - start) / 100) / 10;
      log(`phase ${name} took ${phaseSeconds[name]} s`);
    }
  };
  return { phase, phaseSeconds };
}
