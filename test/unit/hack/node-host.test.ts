import { expect } from 'chai';
import { nodeHostDecision } from '../../../hack/lib/node-host.ts';

// The real-node tests' gate: a host that cannot run a node is a skip with the reason, never a silent
// pass, and under CI=true a failure carrying the same reason.
describe('nodeHostDecision (when the real-node tests run, skip or fail)', () => {
  const reason = 'a node needs root (kubelet, containerd and runc manage cgroups, mounts and namespaces)';
  const table: [string, string | undefined, NodeJS.ProcessEnv, 'run' | 'skip' | 'fail'][] = [
    ['a capable host runs', undefined, {}, 'run'],
    ['a capable host runs in CI too', undefined, { CI: 'true' }, 'run'],
    ['an incapable host skips locally', reason, {}, 'skip'],
    ['CI=false is not CI', reason, { CI: 'false' }, 'skip'],
    ['CI=1 is not the CI=true the runner sets', reason, { CI: '1' }, 'skip'],
    ['an incapable CI host fails', reason, { CI: 'true' }, 'fail'],
  ];
  for (const [name, why, env, want] of table) {
    it(name, () => {
      const d = nodeHostDecision(why, env);
      expect(Object.keys(d)).to.deep.equal([want]);
      if ('skip' in d) expect(d.skip).to.equal(reason);
      if ('fail' in d) {
        expect(d.fail.message).to.contain(reason);
        expect(d.fail.message).to.contain('CI must not pass without them');
      }
    });
  }
});
