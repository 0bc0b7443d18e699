import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../../bin/svidctl.js', import.meta.url));

function svidctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The arguments of an `svidctl issue` that succeeds, with some flags replaced or added (before --out). */
function issueArgs(flags: Record<string, string> = {}): string[] {
  const all: Record<string, string> = {
    '--ca': 'CA',
    '--trust-domain': 'example.org',
    '--namespace': 'prod',
    '--service-account': 'a',
    ...flags,
  };
  return ['issue', ...Object.entries({ ...all, '--out': all['--out'] ?? 'OUT' }).flat()];
}

describe('svidctl', function () {
  this.timeout(30_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'svidctl-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('creates a CA, issues an SVID from it, and inspects it with every check passing', async () => {
    const ca = await svidctl([
      'ca',
      'create',
      '--out',
      `${dir}/ca`,
      '--trust-domain',
      'example.org',
      '--algorithm',
      'ECDSA-384',
    ]);
    expect(ca.code, ca.stderr).to.equal(0);
    expect((await readdir(`${dir}/ca`)).sort()).to.deep.equal(['ca.crt', 'tls.crt', 'tls.key']);
    expect((await stat(`${dir}/ca/tls.key`)).mode & 0o777).to.equal(0o600);
    const issued = await svidctl(
      issueArgs({
        '--ca': `${dir}/ca`,
        '--service-account': 'payments',
        '--dns': 'payments.prod.svc',
        '--duration': '30m',
        '--algorithm': 'Ed25519',
        '--out': `${dir}/svid`,
      }),
    );
    expect(issued.code, issued.stderr).to.equal(0);
    expect(issued.stdout).to.contain('wrote spiffe://example.org/ns/prod/sa/payments');
    const inspected = await svidctl(['inspect', `${dir}/svid`, '--ca', `${dir}/ca`]);
    expect(inspected.code, inspected.stdout).to.equal(0);
    expect(inspected.stdout).to.contain('SPIFFE ID:   spiffe://example.org/ns/prod/sa/payments');
    expect(inspected.stdout).to.match(/ok {3}issued by --ca/);
    expect(inspected.stdout).not.to.contain('FAIL');
    expect(inspected.stdout + inspected.stderr).not.to.contain('PRIVATE KEY');
  });

  it('fails inspect with exit 1 when the key does not match', async () => {
    await svidctl(issueArgs({ '--ca': `${dir}/ca`, '--service-account': 'other', '--out': `${dir}/other` }));
    await copyFile(`${dir}/other/tls.key`, `${dir}/svid/tls.key`);
    const res = await svidctl(['inspect', `${dir}/svid`]);
    expect(res.code).to.equal(1);
    expect(res.stdout).to.contain('FAIL tls.key matches tls.crt');
  });

  const refusals: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['a missing --out', ['ca', 'create'], /--out is required/],
    [
      'a bad trust domain',
      ['ca', 'create', '--out', 'OUT', '--trust-domain', 'Bad.Domain'],
      /only lowercase/,
    ],
    [
      'a bad algorithm',
      ['ca', 'create', '--out', 'OUT', '--algorithm', 'RSA-1024'],
      /RSA keys have size 2048, 3072 or 4096/,
    ],
    ['an unknown flag', ['ca', 'create', '--out', 'OUT', '--colour', 'red'], /Unknown option '--colour'/],
    ['a bad namespace', issueArgs({ '--namespace': 'Prod' }), /not a valid Kubernetes namespace/],
    [
      "another namespace's DNS name",
      issueArgs({ '--dns': 'a.billing.svc' }),
      /belongs to namespace "billing"/,
    ],
    ['a bad duration', issueArgs({ '--duration': '1 day' }), /is not a duration/],
    ['a CA directory without a CA', issueArgs({ '--ca': 'NOWHERE' }), /must hold tls\.crt and tls\.key/],
  ];
  for (const [what, args, message] of refusals) {
    it(`refuses ${what} with exit 2 and writes nothing`, async () => {
      const out = `${dir}/refused-${what.replace(/\W+/g, '-')}`;
      const res = await svidctl(
        args.map((a) =>
          a === 'OUT' ? out : a === 'CA' ? `${dir}/ca` : a === 'NOWHERE' ? `${dir}/nowhere` : a,
        ),
      );
      expect(res.code).to.equal(2);
      expect(res.stderr).to.match(message);
      expect(res.stderr).to.contain('usage:');
      await stat(out).then(
        () => expect.fail(`${out} was written`),
        () => undefined,
      );
    });
  }

  it('refuses to overwrite an existing SVID directory', async () => {
    const res = await svidctl(['ca', 'create', '--out', `${dir}/ca`]);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain('already holds');
  });
});
