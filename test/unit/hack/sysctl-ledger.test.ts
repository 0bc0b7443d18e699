import { expect } from 'chai';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { joinSysctlLedger, leaveSysctlLedger, type LedgerDeps } from '../../../hack/lib/sysctl-ledger.ts';

// Two node clusters on one host: the sysctls go back to the values before the first one, whichever order
// they stop in. A fake host (a map of sysctls) and fake pids stand in for the kernel.
describe('sysctl ledger (node clusters sharing a host)', () => {
  let dir: string;
  let host: Map<string, string>;
  const live = new Set<number>();
  const deps = (pid: number): LedgerDeps => ({
    file: path.join(dir, 'ledger.json'),
    pid,
    alive: (p) => live.has(p),
    read: () => Promise.resolve(new Map(host)),
    restore: (saved) => {
      const changed = [...saved].filter(([k, v]) => host.get(k) !== v).map(([k]) => k);
      for (const [k, v] of saved) host.set(k, v);
      return Promise.resolve(changed);
    },
  });
  const kubeletStarts = () => {
    host.set('vm.overcommit_memory', '1');
    host.set('kernel.panic', '10');
  };
  const original = [
    ['vm.overcommit_memory', '0'],
    ['kernel.panic', '0'],
  ] as const;
  const exists = (f: string) =>
    access(f).then(
      () => true,
      () => false,
    );

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'svid-ledger-'));
    host = new Map(original);
    live.clear();
    live.add(1).add(2);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('one run: restores what it found and removes the ledger', async () => {
    await joinSysctlLedger('a', deps(1));
    kubeletStarts();
    expect(await leaveSysctlLedger('a', deps(1))).to.have.members(['vm.overcommit_memory', 'kernel.panic']);
    expect([...host]).to.deep.equal(original);
    expect(await exists(path.join(dir, 'ledger.json'))).to.equal(false);
  });

  for (const order of [
    ['a', 'b'],
    ['b', 'a'],
  ]) {
    it(`two overlapping runs stopping ${order.join(' then ')}: only the last restores, to the first's values`, async () => {
      await joinSysctlLedger('a', deps(1));
      kubeletStarts();
      await joinSysctlLedger('b', deps(2));
      const [first = '', last = ''] = order;
      const pid = (id: string) => (id === 'a' ? 1 : 2);
      expect(await leaveSysctlLedger(first, deps(pid(first)))).to.deep.equal([]);
      expect(host.get('vm.overcommit_memory')).to.equal('1'); // the other kubelet still runs
      expect(await leaveSysctlLedger(last, deps(pid(last)))).to.have.members([
        'vm.overcommit_memory',
        'kernel.panic',
      ]);
      expect([...host]).to.deep.equal(original);
    });
  }

  it('a run that died without leaving is dropped, and the values it found are still restored', async () => {
    await joinSysctlLedger('a', deps(1));
    kubeletStarts();
    live.delete(1);
    await joinSysctlLedger('b', deps(2));
    expect(await leaveSysctlLedger('b', deps(2))).to.have.members(['vm.overcommit_memory', 'kernel.panic']);
    expect([...host]).to.deep.equal(original);
  });

  it('breaks a lock left by a process that died holding it', async () => {
    await writeFile(path.join(dir, 'ledger.json.lock'), '7'); // pid 7 is not alive
    await joinSysctlLedger('a', deps(1));
    expect(await exists(path.join(dir, 'ledger.json.lock'))).to.equal(false);
    expect(await exists(path.join(dir, 'ledger.json'))).to.equal(true);
  });

  it('leaving without a ledger restores nothing', async () => {
    expect(await leaveSysctlLedger('a', deps(1))).to.deep.equal([]);
  });
});
