// Go-style durations ("1h", "20m", "1h30m", "90s", "1.5h"): the format of spec.duration, spec.renewBefore
// and the operator's flags, and what the CRD's CEL rules accept.

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
const TERM = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;

export class DurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DurationError';
  }
}

/** Seconds in a Go duration string; throws a DurationError naming the expected format. */
export function parseDuration(text: string): number {
  const input = text.trim();
  if (input === '0') return 0;
  let total = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < input.length) {
    const start = TERM.lastIndex;
    const match = TERM.exec(input);
    if (!match || match.index !== start) {
      throw new DurationError(
        `"${text}" is not a duration: use a number and unit, e.g. 1h, 20m, 90s or 1h30m`,
      );
    }
    total += Number(match[1]) * (UNITS[match[2] ?? 's'] ?? 1);
  }
  if (input.length === 0) throw new DurationError('the duration is empty: use e.g. 1h, 20m or 90s');
  return total;
}

/** The shortest Go-style rendering of whole seconds, e.g. 5400 → "1h30m". */
export function formatDuration(seconds: number): string {
  let rest = Math.round(seconds);
  if (rest === 0) return '0s';
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  const s = rest - m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}
