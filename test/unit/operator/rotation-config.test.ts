import { expect } from 'chai';
import { ConfigError, parseConfig } from '../../../src/operator/config.ts';

const base = ['--trust-domain=example.org', '--ca-secret=svid-system/ca'];

describe('operator configuration: CA rotation and renewal bounds', () => {
  it('defaults the propagation delay to 2m and the shortest renewBefore to 1m; flags and env lower them', () => {
    const c = parseConfig(base, {});
    expect(c.caPropagationDelaySeconds).to.equal(120);
    expect(c.minRenewBeforeSeconds).to.equal(60);
    const lowered = parseConfig([...base, '--ca-propagation-delay=5s', '--min-renew-before=10s'], {});
    expect([lowered.caPropagationDelaySeconds, lowered.minRenewBeforeSeconds]).to.deep.equal([5, 10]);
    const env = parseConfig(base, { SVID_CA_PROPAGATION_DELAY: '3m', SVID_MIN_RENEW_BEFORE: '2m' });
    expect([env.caPropagationDelaySeconds, env.minRenewBeforeSeconds]).to.deep.equal([180, 120]);
  });

  it('refuses bad values, and the replaced --ca-overlap, saying what to do', () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--ca-overlap=1h'], {}, /--ca-overlap \(SVID_CA_OVERLAP\) was replaced by --ca-propagation-delay/],
      [[], { SVID_CA_OVERLAP: '1h' }, /was replaced by --ca-propagation-delay/],
      [['--ca-propagation-delay=0s'], {}, /--ca-propagation-delay must be positive, and longer than kubelet/],
      [['--ca-propagation-delay=soon'], {}, /--ca-propagation-delay: .*duration/],
      [['--min-renew-before=0s'], {}, /--min-renew-before must be positive/],
      [['--min-renew-before=-1m'], {}, /--min-renew-before: .*duration/],
    ];
    for (const [args, env, why] of cases) {
      expect(() => parseConfig([...base, ...args], env), args.join(' ')).to.throw(ConfigError, why);
    }
  });
});
