import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'chai';
import fc from 'fast-check';
import {
  parseStat,
  readProc,
  waitGone,
  withDescendants,
  type ProcInfo,
} from '../../../hack/lib/run-processes.ts';

describe('run processes (the node teardown finding what to kill by command line, and waiting for it)', () => {
  describe('parseStat', () => {
    it('reads pid, name, state and parent of a /proc/<pid>/stat line', () => {
      expect(parseStat('12029 (containerd-shim) S 1 12029 12029 0 -1 4194560 1000')).to.deep.equal({
        pid: 12029,
        ppid: 1,
        state: 'S',
        comm: 'containerd-shim',
      });
      expect(parseStat('12054 (pause) Z 1 12054 12054 0 -1')?.state).to.equal('Z');
    });

    it('takes a name holding spaces and parentheses up to the last ") "', () => {
      expect(parseStat('7 (a) b (c)) R 3 7 7')).to.deep.equal({
        pid: 7,
        ppid: 3,
        state: 'R',
        comm: 'a) b (c)',
      });
      expect(parseStat('8 () S 2 8')).to.deep.equal({ pid: 8, ppid: 2, state: 'S', comm: '' });
    });

    for (const bad of [
      '',
      'garbage',
      '(x) S 1',
      '0 (x) S 1',
      '-3 (x) S 1',
      'x1 (x) S 1',
      '1e3 (x) S 1',
      '5 (x)',
      '5 (x) ',
      '5 (x) SS 1',
      '5 (x) 1 1',
      '5 (x) S',
      '5 (x) S -1',
      '5 (x) S one',
      '99999999999999999999 (x) S 1',
    ]) {
      it(`refuses ${JSON.stringify(bad)}`, () => {
        expect(parseStat(bad)).to.equal(undefined);
      });
    }

    it('never throws, and what it returns round-trips (property)', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 80 }), (line) => {
          const p = parseStat(line);
          if (p)
            expect(Number.isSafeInteger(p.pid) && p.pid > 0 && /^[A-Za-z]$/.test(p.state)).to.equal(true);
        }),
      );
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 4_194_304 }),
          fc.string({ maxLength: 15 }),
          fc.constantFrom('R', 'S', 'D', 'Z', 'T', 'I'),
          fc.integer({ min: 0, max: 4_194_304 }),
          (pid, comm, state, ppid) => {
            expect(parseStat(`${pid} (${comm}) ${state} ${ppid} 1 2 3`)).to.deep.equal({
              pid,
              ppid,
              state,
              comm,
            });
          },
        ),
      );
    });
  });

  describe('withDescendants', () => {
    const p = (pid: number, ppid: number): ProcInfo => ({ pid, ppid, state: 'S', comm: 'x' });
    it('finds children and grandchildren listed in any order, and nothing else', () => {
      const procs = [p(30, 20), p(20, 10), p(10, 1), p(11, 1), p(40, 11), p(50, 30)];
      expect([...withDescendants(procs, [10])].sort((a, b) => a - b)).to.deep.equal([10, 20, 30, 50]);
      expect([...withDescendants(procs, [])]).to.deep.equal([]);
      expect([...withDescendants(procs, [99])]).to.deep.equal([99]);
    });
    it('ends on a parent loop (a PID reused while the list was read)', () => {
      expect([...withDescendants([p(2, 3), p(3, 2)], [2])].sort()).to.deep.equal([2, 3]);
    });
  });

  describe('waitGone', () => {
    it('returns once a killed child is reaped, and names one that is still running', async () => {
      const child = spawn('sleep', ['30'], { stdio: 'ignore' });
      await once(child, 'spawn');
      const pid = child.pid ?? 0;
      expect((await readProc(pid))?.comm).to.equal('sleep');
      const still = await waitGone([pid], 200);
      expect(still.map((s) => s.pid)).to.deep.equal([pid]);
      child.kill('SIGKILL');
      await once(child, 'exit');
      expect(await waitGone([pid], 5_000)).to.deep.equal([]);
      expect(await readProc(pid)).to.equal(undefined);
    });
  });
});
