import { expect } from 'chai';
import { ConfigError, parseConfig } from '../../../src/operator/config.ts';

const base = ['--trust-domain=example.org', '--ca-secret=svid-system/ca'];

describe('operator configuration: --bootstrap-dev-ca', () => {
  it('is off by default (safe: the operator creates nothing unless asked), with a 1-year validity', () => {
    const c = parseConfig(base, {});
    expect(c.bootstrapDevCa).to.equal(false);
    expect(c.bootstrapDevCaValiditySeconds).to.equal(365 * 86400);
  });

  const table: {
    args: string[];
    env?: Record<string, string>;
    ok?: Partial<ReturnType<typeof parseConfig>>;
    error?: RegExp;
  }[] = [
    { args: ['--bootstrap-dev-ca=true'], ok: { bootstrapDevCa: true } },
    { args: ['--bootstrap-dev-ca=false'], ok: { bootstrapDevCa: false } },
    { args: [], env: { SVID_BOOTSTRAP_DEV_CA: 'true' }, ok: { bootstrapDevCa: true } },
    {
      args: ['--bootstrap-dev-ca=false'],
      env: { SVID_BOOTSTRAP_DEV_CA: 'true' },
      ok: { bootstrapDevCa: false },
    },
    { args: ['--bootstrap-dev-ca=yes'], error: /--bootstrap-dev-ca must be true or false, not "yes"/ },
    { args: ['--bootstrap-dev-ca=TRUE'], error: /--bootstrap-dev-ca must be true or false/ },
    { args: ['--bootstrap-dev-ca-validity=720h'], ok: { bootstrapDevCaValiditySeconds: 720 * 3600 } },
    { args: ['--bootstrap-dev-ca-validity=30m'], error: /--bootstrap-dev-ca-validity must be at least 1h/ },
    { args: ['--bootstrap-dev-ca-validity=forever'], error: /--bootstrap-dev-ca-validity: / },
  ];
  for (const row of table) {
    it(`${row.error ? 'refuses' : 'accepts'} ${[...row.args, ...Object.entries(row.env ?? {}).map(([k, v]) => `${k}=${v}`)].join(' ')}`, () => {
      const run = () => parseConfig([...base, ...row.args], row.env ?? {});
      if (row.error) {
        expect(run).to.throw(ConfigError, row.error);
        return;
      }
      expect(run()).to.deep.include(row.ok ?? {});
    });
  }
});
