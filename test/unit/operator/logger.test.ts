import { expect } from 'chai';
import fc from 'fast-check';
import { createLogger, type Logger, type LoggerOptions } from '../../../src/operator/logger.ts';

const AT = new Date('2026-01-02T03:04:05.678Z');

/** A logger whose writes, deferred flushes and clock the test holds. */
function harness(level = 'debug', o: LoggerOptions = {}) {
  const writes: string[] = [];
  const deferred: (() => void)[] = [];
  const log: Logger = createLogger(level, {
    write: (text) => writes.push(text),
    now: () => AT,
    defer: (fn) => deferred.push(fn),
    ...o,
  });
  const runDeferred = () => {
    for (const fn of deferred.splice(0)) fn();
  };
  const lines = () =>
    writes
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, writes, deferred, runDeferred, lines };
}

describe('operator logger', () => {
  it('writes winston json lines: component, the meta, level, message, timestamp', () => {
    const h = harness('info');
    h.log.info('issued SVID', { identity: 'ns/a', serial: '0a', cause: 'Missing' });
    h.runDeferred();
    expect(h.writes).to.deep.equal([
      '{"component":"svid-operator","identity":"ns/a","serial":"0a","cause":"Missing","level":"info","message":"issued SVID","timestamp":"2026-01-02T03:04:05.678Z"}\n',
    ]);
  });

  const levels: [string, string[]][] = [
    ['error', ['error']],
    ['warn', ['error', 'warn']],
    ['info', ['error', 'warn', 'info']],
    ['debug', ['error', 'warn', 'info', 'debug']],
  ];
  for (const [level, shown] of levels) {
    it(`at level ${level} writes only ${shown.join(', ')}`, () => {
      const h = harness(level);
      h.log.debug('d');
      h.log.info('i');
      h.log.warn('w');
      h.log.error('e');
      h.runDeferred();
      expect(h.lines().map((l) => l.level)).to.have.members(shown);
      expect(h.lines()).to.have.length(shown.length);
    });
  }

  it('refuses an unknown level, naming the ones it takes', () => {
    for (const level of ['', 'verbose', 'INFO', 'silly', 'constructor', '__proto__']) {
      expect(() => createLogger(level, { write: () => undefined }), level).to.throw(
        RangeError,
        `log level must be error, warn, info or debug, not ${level}`,
      );
    }
  });

  it('writes the info and debug lines of one turn in one write, when the deferred flush runs', () => {
    const h = harness();
    h.log.info('a');
    h.log.debug('b');
    h.log.info('c');
    expect(h.writes).to.deep.equal([]);
    expect(h.deferred).to.have.length(1);
    h.runDeferred();
    expect(h.writes).to.have.length(1);
    expect(h.lines().map((l) => l.message)).to.deep.equal(['a', 'b', 'c']);
    h.log.info('d');
    expect(h.deferred).to.have.length(1);
    h.runDeferred();
    expect(h.writes).to.have.length(2);
  });

  for (const level of ['warn', 'error'] as const) {
    it(`writes a ${level} at once, after what was waiting, so it is never lost to an exit`, () => {
      const h = harness();
      h.log.info('before');
      h.log[level]('the problem', { why: 'x' });
      expect(h.lines().map((l) => [l.level, l.message])).to.deep.equal([
        ['info', 'before'],
        [level, 'the problem'],
      ]);
      h.runDeferred();
      expect(h.writes).to.have.length(1);
    });
  }

  it('flush() writes what is waiting; a flush with nothing waiting writes nothing', () => {
    const h = harness();
    h.log.flush();
    expect(h.writes).to.deep.equal([]);
    h.log.info('a');
    h.log.flush();
    expect(h.lines().map((l) => l.message)).to.deep.equal(['a']);
    h.runDeferred();
    expect(h.writes).to.have.length(1);
  });

  // Meta that callers could pass, and what winston's json format made of it.
  const cases: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['a BigInt as its decimal string', { n: 12345678901234567890n }, { n: '12345678901234567890' }],
    ['an Error as {}, as winston did (callers log errorText)', { error: new Error('boom') }, { error: {} }],
    ['a Date as its ISO text', { at: AT }, { at: '2026-01-02T03:04:05.678Z' }],
    ['undefined fields left out', { a: undefined, b: 1 }, { b: 1 }],
    ['a nested object', { o: { p: [1, 'x', null] } }, { o: { p: [1, 'x', null] } }],
    ['a caller component wins over the default', { component: 'other' }, { component: 'other' }],
    ['meta level cannot change the level', { level: 'error' }, { level: 'info' }],
    ['meta timestamp cannot change the timestamp', { timestamp: 'x' }, { timestamp: AT.toISOString() }],
    ['meta message is appended, as winston does', { message: 'extra' }, { message: 'm extra' }],
    ['a null meta message is ignored', { message: null }, { message: 'm' }],
  ];
  for (const [name, meta, expected] of cases) {
    it(`meta: ${name}`, () => {
      const h = harness();
      h.log.info('m', meta);
      h.runDeferred();
      const [line] = h.lines();
      expect(line).to.deep.include(expected);
      expect(h.writes.join('').split('\n')).to.have.length(2);
    });
  }

  it('cuts a cycle instead of throwing, and keeps a value seen twice but not in a cycle', () => {
    const h = harness();
    const shared = { s: 1 };
    const cyclic: Record<string, unknown> = { name: 'c', shared, again: shared };
    cyclic.self = cyclic;
    h.log.info('m', { cyclic, n: 1n });
    h.runDeferred();
    expect(h.lines()[0]?.cyclic).to.deep.equal({
      name: 'c',
      shared: { s: 1 },
      again: { s: 1 },
      self: '[Circular]',
    });
  });

  it('a message with newlines and separators stays one line', () => {
    const h = harness();
    h.log.info('a\nb\r\nc\u2028d', { v: 'x\ny' });
    h.runDeferred();
    expect(h.writes.join('').split('\n')).to.have.length(2);
    expect(h.lines()[0]).to.include({ message: 'a\nb\r\nc\u2028d', v: 'x\ny' });
  });

  it('property: any JSON meta and message give exactly one line that reads back as winston would write it', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.dictionary(
          fc.string().filter((k) => !['level', 'message', 'timestamp', '__proto__'].includes(k)),
          fc.jsonValue(),
        ),
        (message, meta) => {
          const h = harness();
          h.log.info(message, meta);
          h.runDeferred();
          const text = h.writes.join('');
          expect(text.endsWith('\n')).to.equal(true);
          expect(text.indexOf('\n')).to.equal(text.length - 1);
          const line = JSON.parse(text) as Record<string, unknown>;
          expect(line).to.deep.equal(
            JSON.parse(
              JSON.stringify({
                component: 'svid-operator',
                ...meta,
                level: 'info',
                message,
                timestamp: AT.toISOString(),
              }),
            ),
          );
        },
      ),
    );
  });
});
