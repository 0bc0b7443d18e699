import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSelfSignedCa } from '../../../src/pki/index.ts';
import { parseSpiffeBundle } from '../../../src/trust/spiffe-bundle.ts';

const bin = fileURLToPath(new URL('../../../bin/svidctl.js', import.meta.url));

function svidctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('svidctl bundle', function () {
  this.timeout(30_000);
  let dir: string;
  let extra: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'svidctl-bundle-'));
    const ca = await svidctl(['ca', 'create', '--out', `${dir}/ca`, '--trust-domain', 'example.org']);
    expect(ca.code, ca.stderr).to.equal(0);
    extra = (await createSelfSignedCa({ trustDomain: 'other.org' })).certPem;
    await writeFile(`${dir}/extra.pem`, extra);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('prints the trust bundle as PEM, extra roots included', async () => {
    const r = await svidctl(['bundle', '--ca', `${dir}/ca`, '--extra-roots', `${dir}/extra.pem`]);
    expect(r.code, r.stderr).to.equal(0);
    const certs = r.stdout.split(/(?=-----BEGIN CERTIFICATE-----)/).map((c) => new X509Certificate(c));
    expect(certs.map((c) => c.fingerprint256)).to.deep.equal([
      new X509Certificate(await readFile(`${dir}/ca/tls.crt`)).fingerprint256,
      new X509Certificate(extra).fingerprint256,
    ]);
    expect(r.stdout).not.to.contain('PRIVATE KEY');
  });

  it('prints the SPIFFE bundle JWKS with the given sequence and refresh hint', async () => {
    const r = await svidctl([
      'bundle',
      '--ca',
      `${dir}/ca`,
      '--format',
      'spiffe',
      '--sequence',
      '7',
      '--refresh-hint',
      '10m',
    ]);
    expect(r.code, r.stderr).to.equal(0);
    const parsed = parseSpiffeBundle(r.stdout);
    if (!('bundle' in parsed)) throw new Error(parsed.problem);
    expect(parsed.bundle.spiffe_sequence).to.equal(7);
    expect(parsed.bundle.spiffe_refresh_hint).to.equal(600);
    expect(parsed.bundle.keys).to.have.length(1);
  });

  const usage: { args: string[]; says: RegExp }[] = [
    { args: ['bundle'], says: /--ca is required/ },
    { args: ['bundle', '--ca', '/nonexistent'], says: /must hold tls.crt and tls.key/ },
    { args: ['bundle', '--ca', 'X', '--format', 'der'], says: /--format must be pem or spiffe, not "der"/ },
    { args: ['bundle', '--ca', 'X', '--sequence', '0'], says: /--sequence must be a positive integer/ },
    { args: ['bundle', '--ca', 'X', '--refresh-hint', 'soon'], says: /--refresh-hint/ },
    { args: ['bundle', '--ca', 'X', '--bogus'], says: /Unknown option '--bogus'/ },
  ];
  for (const u of usage) {
    it(`exits 2 for ${u.args.slice(1).join(' ') || 'no arguments'}`, async () => {
      const r = await svidctl(u.args);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(u.says);
    });
  }
});
