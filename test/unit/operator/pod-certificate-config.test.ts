import { expect } from 'chai';
import { ConfigError, parseConfig } from '../../../src/operator/config.ts';

const base = ['--trust-domain=example.org', '--ca-secret=svid-system/ca'];

function problem(args: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig([...base, ...args], env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('pod-certificate flags', () => {
  it('are off by default, with a 24h duration and no namespaces', () => {
    expect(parseConfig(base, {}).podCertificates).to.deep.equal({
      enabled: false,
      durationSeconds: 86400,
      namespaces: [],
    });
  });

  it('read flags and environment variables (flags win)', () => {
    const c = parseConfig(
      [
        ...base,
        '--pod-certificate-signer=true',
        '--pod-certificate-namespace=a',
        '--pod-certificate-namespace=b',
      ],
      {
        SVID_POD_CERTIFICATE_DURATION: '2h',
        SVID_POD_CERTIFICATE_SIGNER: 'false',
        SVID_POD_CERTIFICATE_NAMESPACES: 'x',
      },
    );
    expect(c.podCertificates).to.deep.equal({ enabled: true, durationSeconds: 7200, namespaces: ['a', 'b'] });
  });

  it('take --pod-certificate-refresh-after (env SVID_POD_CERTIFICATE_REFRESH_AFTER); empty means the renewal rule', () => {
    expect(
      parseConfig([...base, '--pod-certificate-refresh-after=10m'], {}).podCertificates.refreshAfterSeconds,
    ).to.equal(600);
    expect(
      parseConfig(base, { SVID_POD_CERTIFICATE_REFRESH_AFTER: '2h' }).podCertificates.refreshAfterSeconds,
    ).to.equal(7200);
    // The chart renders the flag with an empty value by default.
    expect(
      parseConfig([...base, '--pod-certificate-refresh-after='], {}).podCertificates,
    ).to.not.have.property('refreshAfterSeconds');
  });

  const bad: { args: string[]; says: RegExp }[] = [
    {
      args: ['--pod-certificate-refresh-after=9m59s'],
      says: /--pod-certificate-refresh-after must be at least 10m \(the API server refuses a beginRefreshAt earlier than notBefore \+ 10 min\), not "9m59s"/,
    },
    {
      args: ['--pod-certificate-duration=1h', '--pod-certificate-refresh-after=51m'],
      says: /--pod-certificate-refresh-after must be at least 10m shorter than --pod-certificate-duration .* not "51m"/,
    },
    { args: ['--pod-certificate-refresh-after=later'], says: /--pod-certificate-refresh-after: / },
    { args: ['--pod-certificate-refresh-after=-10m'], says: /--pod-certificate-refresh-after/ },
    {
      args: ['--pod-certificate-signer=yes'],
      says: /--pod-certificate-signer must be true or false, not "yes"/,
    },
    {
      args: ['--pod-certificate-duration=59m'],
      says: /--pod-certificate-duration must be between 1h .* and 2184h/,
    },
    { args: ['--pod-certificate-duration=2185h'], says: /--pod-certificate-duration must be between 1h/ },
    { args: ['--pod-certificate-duration=soon'], says: /--pod-certificate-duration: / },
    {
      args: ['--pod-certificate-namespace=Bad_NS'],
      says: /--pod-certificate-namespace "Bad_NS" is not a valid namespace name/,
    },
  ];
  for (const b of bad) {
    it(`refuses ${b.args.join(' ')}`, () => {
      expect(problem(b.args)).to.match(b.says);
    });
  }
});
