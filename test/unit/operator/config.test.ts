import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  OPTIONS,
  parseConfig,
  parseTestTuning,
  USAGE,
  wantsHelp,
} from '../../../src/operator/config.ts';

const required = ['--trust-domain=example.org', '--ca-secret=svid-system/ca'];

function refused(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig([...required, ...argv], env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  return expect.fail(`expected ${argv.join(' ')} to be refused`);
}

describe('operator configuration', () => {
  describe('--resync-period', () => {
    it('defaults to 10 minutes', () => {
      expect(parseConfig(required, {}).resyncSeconds).to.equal(600);
    });

    it('0 turns the resync off (it used to re-queue every identity every millisecond)', () => {
      expect(parseConfig([...required, '--resync-period=0'], {}).resyncSeconds).to.equal(0);
      expect(parseConfig([...required, '--resync-period=0s'], {}).resyncSeconds).to.equal(0);
      expect(parseConfig(required, { SVID_RESYNC_PERIOD: '0' }).resyncSeconds).to.equal(0);
    });

    const tooShort: [string, string][] = [
      ['1ms', '1ms'],
      ['0.5s', '0.5s'],
      ['59s', '59s'],
      ['env 30s', '30s'],
    ];
    for (const [what, value] of tooShort) {
      it(`refuses ${what}, below a minute, saying what is allowed`, () => {
        const message = what.startsWith('env')
          ? refused([], { SVID_RESYNC_PERIOD: value })
          : refused([`--resync-period=${value}`]);
        expect(message).to.contain(
          `--resync-period must be 0 (off) or at least 1m, not "${value}": every resync re-checks every identity`,
        );
      });
    }

    it('accepts a minute and more', () => {
      expect(parseConfig([...required, '--resync-period=1m'], {}).resyncSeconds).to.equal(60);
      expect(parseConfig([...required, '--resync-period=2h'], {}).resyncSeconds).to.equal(7200);
    });

    it('refuses what is not a duration', () => {
      expect(refused(['--resync-period=soon'])).to.match(/--resync-period: "soon" is not a duration/);
    });
  });

  describe('--api-connections', () => {
    it('defaults to 32, and takes a whole number from the flag or SVID_API_CONNECTIONS', () => {
      expect(parseConfig(required, {}).apiConnections).to.equal(32);
      expect(parseConfig([...required, '--api-connections=8'], {}).apiConnections).to.equal(8);
      expect(parseConfig(required, { SVID_API_CONNECTIONS: '1024' }).apiConnections).to.equal(1024);
      expect(
        parseConfig([...required, '--api-connections=2'], { SVID_API_CONNECTIONS: '64' }).apiConnections,
        'the flag wins',
      ).to.equal(2);
    });
    for (const bad of ['0', '-1', '1.5', 'many', '', '1e3', '0x10', ' 8', '8 ', '+8', '1025', '9999999999']) {
      it(`refuses ${JSON.stringify(bad)}, saying what it takes`, () => {
        expect(refused([`--api-connections=${bad}`])).to.include(
          `--api-connections must be a whole number from 1 to 1024, not "${bad}"`,
        );
      });
    }
    it('refuses a bad SVID_API_CONNECTIONS the same way', () => {
      expect(refused([], { SVID_API_CONNECTIONS: '1e3' })).to.include(
        '--api-connections must be a whole number from 1 to 1024, not "1e3"',
      );
    });
  });

  describe('test-only tuning from the environment', () => {
    it('is empty by default and reads whole seconds', () => {
      expect(parseTestTuning({})).to.deep.equal({
        watchTimeoutSeconds: undefined,
        healthWindowSeconds: undefined,
        cacheSyncTimeoutSeconds: undefined,
      });
      expect(
        parseTestTuning({
          SVID_TEST_WATCH_TIMEOUT_SECONDS: '1',
          SVID_TEST_HEALTH_WINDOW_SECONDS: '4',
          SVID_TEST_CACHE_SYNC_TIMEOUT_SECONDS: '5',
        }),
      ).to.deep.equal({ watchTimeoutSeconds: 1, healthWindowSeconds: 4, cacheSyncTimeoutSeconds: 5 });
    });

    for (const bad of ['0', '-1', '1.5', 'soon', '1e400']) {
      it(`refuses "${bad}"`, () => {
        expect(() => parseTestTuning({ SVID_TEST_WATCH_TIMEOUT_SECONDS: bad })).to.throw(
          ConfigError,
          `SVID_TEST_WATCH_TIMEOUT_SECONDS must be a whole number of seconds >= 1, not "${bad}"`,
        );
      });
    }
  });
});

describe('svid-operator --help', () => {
  const cases: [string[], boolean][] = [
    [['--help'], true],
    [['-h'], true],
    [['--trust-domain=example.org', '--help'], true],
    [['--bogus', '-h'], true],
    [['--', '--help'], false],
    [['--helpful'], false],
    [['--help=yes'], false],
    [['-H'], false],
    [[], false],
  ];
  for (const [argv, want] of cases) {
    it(`${JSON.stringify(argv)} ${want ? 'asks' : 'does not ask'} for the usage`, () => {
      expect(wantsHelp(argv)).to.equal(want);
    });
  }

  it('the usage names every flag with what it does, its environment variable and its default', () => {
    const lines = USAGE.split('\n');
    for (const [flag, o] of Object.entries(OPTIONS)) {
      const at = lines.findIndex((l) => l === `  --${flag}` || l.startsWith(`  --${flag} (`));
      expect(at, flag).to.be.greaterThan(0);
      const entry = lines.slice(at, at + 3).join('\n');
      expect(o.help.length, flag).to.be.greaterThan(10);
      expect(entry, flag).to.include(o.help).and.to.include(`env ${o.env}`);
      if (o.default) expect(entry, flag).to.include(`default ${o.default}`);
    }
  });

  it('an unknown flag is refused with its name and where to find the flags, not the whole usage', () => {
    const message = refused(['--trust-domian=example.org']);
    expect(message).to.include("'--trust-domian'").and.to.include('run svid-operator --help');
    expect(message).not.to.include('usage:');
  });

  it('the operator prints the usage on stdout and exits 0 without a cluster', () => {
    const main = fileURLToPath(new URL('../../../src/operator/main.ts', import.meta.url));
    const run = spawnSync(process.execPath, [main, '--help'], {
      encoding: 'utf8',
      env: { ...process.env },
      timeout: 60_000,
    });
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stdout).to.equal(`${USAGE}\n`);
    expect(run.stderr).to.equal('');
  });
});
