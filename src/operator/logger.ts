// The operator's log: structured JSON, one line per decision; callers pass identities and reasons as fields.
//
// Written directly rather than through winston: at the 1,000-identity wave winston's object-mode stream
// pipeline (logger -> format chain -> transport, each a readable-stream Transform) and its console transport
// were 5.2 % of the operator's sampled time for one info line per issuance (hack/profile-wave.ts --cpu-prof).
// The lines keep winston's json shape (the same fields: component, the caller's meta, level, message,
// timestamp; a BigInt as its decimal string; an Error as {}), and the lines logged within one turn of the
// event loop leave in one write to stdout instead of one each. A warning or an error is written at once,
// with whatever was waiting before it, and whatever is waiting is written when the process exits.
//
// Info and debug lines wait up to FLUSH_MS for their write (they waited for the end of the event loop's turn):
// a wave's turns are short and many, and the one stdout write per turn that logged was still 2.4 % of the
// operator's sampled CPU at the 1,000-identity wave (writeUtf8String under flush, hack/profile-wave.ts
// --cpu-prof), one pipe write per issued SVID or so.

export type Level = 'error' | 'warn' | 'info' | 'debug';
export type Meta = Record<string, unknown>;

export interface Logger {
  error(message: string, meta?: Meta): void;
  warn(message: string, meta?: Meta): void;
  info(message: string, meta?: Meta): void;
  debug(message: string, meta?: Meta): void;
  /** Writes whatever is waiting now. */
  flush(): void;
}

export interface LoggerOptions {
  /** Where the text goes. Default: process.stdout. */
  write?: (text: string) => void;
  /** The timestamp of each line. Default: the wall clock. */
  now?: () => Date;
  /** Runs `flush` later (once per batch). Default: after FLUSH_MS (an unref'd timer; exit flushes too). */
  defer?: (flush: () => void) => void;
  /** Fields on every line (a caller's field of the same name wins). Default: component svid-operator. */
  defaults?: Meta;
}

/** How long info and debug lines wait to be written together. */
export const FLUSH_MS = 100;

const SEVERITY: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export function isLevel(level: string): level is Level {
  return Object.hasOwn(SEVERITY, level);
}

export function createLogger(level: string, o: LoggerOptions = {}): Logger {
  if (!isLevel(level)) throw new RangeError(`log level must be error, warn, info or debug, not ${level}`);
  const max = SEVERITY[level];
  const write = o.write ?? ((text: string) => void process.stdout.write(text));
  const now = o.now ?? (() => new Date());
  const defer = o.defer ?? ((fn: () => void) => void setTimeout(fn, FLUSH_MS).unref());
  const defaults = o.defaults ?? { component: 'svid-operator' };
  let pending = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === '') return;
    const text = pending;
    pending = '';
    write(text);
  };
  if (!o.write) process.on('exit', flush);
  const at =
    (lvl: Level) =>
    (message: string, meta?: Meta): void => {
      if (SEVERITY[lvl] > max) return;
      pending += formatLine(lvl, message, meta, defaults, now());
      if (SEVERITY[lvl] <= SEVERITY.warn) flush();
      else if (!scheduled) {
        scheduled = true;
        defer(flush);
      }
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), flush };
}

/**
 * One log line with its newline: winston's json format without its stream machinery. A `message` in meta
 * is appended to the message, as winston does; level, message and timestamp cannot be overridden by meta.
 */
export function formatLine(
  level: Level,
  message: string,
  meta: Meta | undefined,
  defaults: Meta,
  at: Date,
): string {
  const extra = meta?.message;
  const line: Meta = {
    ...defaults,
    ...meta,
    level,
    message: extra === undefined || extra === null ? message : `${message} ${String(extra as string)}`,
    timestamp: at.toISOString(),
  };
  return `${stringify(line)}\n`;
}

/** JSON.stringify, and for what it refuses (a BigInt, a cycle) the same with BigInts as text and cycles cut. */
function stringify(value: Meta): string {
  try {
    return JSON.stringify(value);
  } catch {
    const open: unknown[] = [];
    return JSON.stringify(value, function (this: unknown, _key, v: unknown) {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v !== 'object' || v === null) return v;
      // `this` is the object holding v: unwind the path to it, then refuse v if it is on that path.
      while (open.length > 0 && open[open.length - 1] !== this) open.pop();
      if (open.includes(v)) return '[Circular]';
      open.push(v);
      return v;
    });
  }
}
