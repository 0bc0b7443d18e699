// The library as a user outside this repository gets it: packed, installed from the tarball into a fresh
// application in a temporary directory, then imported by plain node, type-checked by tsc under nodenext, and
// run as an mTLS server and client with SVIDs from svidctl through a kubelet-style rotation. On Node 24 (the
// project's) and Node 22 (from the npm registry, hack/lib/node-runtime.ts).
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureNode, npmCommand } from '../../hack/lib/node-runtime.ts';
import { packMtls } from '../../hack/pack-mtls.ts';
import { SecretVolume, type Files } from '../../hack/lib/secret-volume.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const app = fileURLToPath(new URL('./app/', import.meta.url));
const TD = 'consumer.example';
const idOf = (sa: string) => `spiffe://${TD}/ns/demo/sa/${sa}`;

/** The environment of a user's shell: none of this repository's npm settings or Node conditions. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (k !== 'NODE_OPTIONS' && !k.toLowerCase().startsWith('npm_')) env[k] = v;
  return env;
}

let tarball: Promise<string> | undefined;
let svids: Promise<{ ca: string; server: Files; server2: Files; client: Files }> | undefined;

async function svidctl(args: string[]): Promise<void> {
  await run(process.execPath, [path.join(root, 'bin/svidctl.js'), ...args], { cwd: root });
}

async function readSet(dir: string): Promise<Files> {
  const f = (n: string) => readFile(path.join(dir, n), 'utf8');
  return { 'tls.crt': await f('tls.crt'), 'tls.key': await f('tls.key'), 'ca.crt': await f('ca.crt') };
}

async function makeSvids(work: string) {
  const ca = path.join(work, 'ca');
  await svidctl(['ca', 'create', '--out', ca, '--trust-domain', TD]);
  const issue = async (sa: string, out: string) => {
    await svidctl([
      'issue',
      '--ca',
      ca,
      '--trust-domain',
      TD,
      '--namespace',
      'demo',
      '--service-account',
      sa,
      '--out',
      out,
    ]);
    return readSet(out);
  };
  return {
    ca,
    server: await issue('server', path.join(work, 's1')),
    server2: await issue('server', path.join(work, 's2')),
    client: await issue('client', path.join(work, 'c1')),
  };
}

describe('@svid-operator/mtls tarball contents', function () {
  this.timeout(5 * 60_000);

  it('holds only built JavaScript, type declarations, README, LICENSE, CHANGELOG and package.json', async () => {
    tarball ??= packMtls();
    const { stdout } = await run('tar', ['-tzf', await tarball]);
    const files = stdout
      .trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, ''));
    const allowed = /^(dist\/[a-z0-9/-]+\.(js|d\.ts)|README\.md|LICENSE|CHANGELOG\.md|package\.json)$/;
    expect(files.filter((f) => !allowed.test(f))).to.deep.equal([]);
    expect(files).to.include.members([
      'dist/index.js',
      'dist/index.d.ts',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
    ]);
  });
});

for (const version of ['24', '22'] as const) {
  describe(`@svid-operator/mtls installed from its tarball into a fresh application, Node ${version}`, function () {
    this.timeout(10 * 60_000);
    let dir: string;
    let work: string;
    let node: string;
    const volumes: SecretVolume[] = [];

    before(async () => {
      node = version === '24' ? process.execPath : await ensureNode();
      const { stdout } = await run(node, ['--version']);
      expect(stdout.trim()).to.match(new RegExp(`^v${version}\\.`));
      tarball ??= packMtls();
      const tgz = await tarball;
      dir = await mkdtemp(path.join(os.tmpdir(), `svid-consumer-node${version}-`));
      expect(path.relative(root, dir).startsWith('..'), 'outside the repository').to.equal(true);
      await writeFile(
        path.join(dir, 'package.json'),
        JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2),
      );
      for (const f of ['import.mjs', 'consumer.ts', 'rotation.mjs'])
        await copyFile(path.join(app, f), path.join(dir, f));
      await writeFile(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            strict: true,
            noEmit: true,
            types: ['node'],
            skipLibCheck: false,
          },
          files: ['consumer.ts'],
        }),
      );
      const [npm, npmArgs] = npmCommand();
      // One install per Node version, run by that version; npm's cache is warm after the first run.
      const npmBin = npm === process.execPath ? node : npm;
      await run(
        npmBin,
        [...npmArgs, 'install', '--no-audit', '--no-fund', '--prefer-offline', tgz, '@types/node@24.19.2'],
        {
          cwd: dir,
          env: userEnv(),
          maxBuffer: 16 * 1024 * 1024,
        },
      );
      work = await mkdtemp(path.join(os.tmpdir(), 'svid-consumer-svids-'));
      svids ??= makeSvids(work);
    });

    after(async () => {
      for (const v of volumes) await v.remove();
      if (dir) await rm(dir, { recursive: true, force: true });
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('(a) plain node imports it, with no flags', async () => {
      const { stdout } = await run(node, ['import.mjs'], { cwd: dir, env: userEnv() });
      expect(JSON.parse(stdout)).to.deep.equal({
        SvidSource: 'function',
        createHttpsServer: 'function',
        SvidAgent: 'function',
        SvidDispatcher: 'function',
        authorizeAny: 'function',
        parseXfcc: 'function',
      });
      const manifest = JSON.parse(
        await readFile(path.join(dir, 'node_modules/@svid-operator/mtls/package.json'), 'utf8'),
      );
      expect(manifest.exports['.'].default).to.equal('./dist/index.js');
    });

    it('(b) tsc --noEmit type-checks a TypeScript consumer against the shipped types under nodenext', async () => {
      const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
      const result = await run(node, [tsc, '-p', 'tsconfig.json'], { cwd: dir, env: userEnv() }).then(
        () => '',
        (err: { stdout: string }) => err.stdout,
      );
      expect(result).to.equal('');
    });

    it('(c) runs an mTLS server and client from the package, with SVIDs from svidctl, through a kubelet-style rotation', async () => {
      const set = await (svids as NonNullable<typeof svids>);
      const serverVol = await SecretVolume.create(set.server);
      const clientVol = await SecretVolume.create(set.client);
      volumes.push(serverVol, clientVol);
      const child = spawn(
        node,
        ['rotation.mjs', serverVol.dir, clientVol.dir, idOf('server'), idOf('client')],
        {
          cwd: dir,
          env: userEnv(),
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const exited = once(child, 'exit');
      try {
        const before = JSON.parse((await lines.next()).value as string);
        const serial = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();
        expect(before).to.deep.equal({
          step: 'before',
          status: 200,
          peer: idOf('client'),
          presented: serial(set.server['tls.crt']),
        });
        await serverVol.swap(set.server2);
        const after = JSON.parse((await lines.next()).value as string);
        const next = serial(set.server2['tls.crt']);
        expect(after).to.deep.equal({
          step: 'after',
          rotatedTo: next,
          status: 200,
          peer: idOf('client'),
          presented: next,
        });
        const [code] = await exited;
        expect(code).to.equal(0);
      } finally {
        child.kill();
      }
    });

    it('(d) npm ls --all shows no Kubernetes client, logger or metrics library, and undici', async () => {
      const [npm, npmArgs] = npmCommand();
      const { stdout } = await run(npm === process.execPath ? node : npm, [...npmArgs, 'ls', '--all'], {
        cwd: dir,
        env: userEnv(),
      });
      expect(stdout).to.contain('@svid-operator/mtls@0.1.0');
      expect(stdout).to.match(/undici@/);
      for (const name of ['@kubernetes/client-node', 'winston', 'prom-client', 'pkijs', '@peculiar'])
        expect(stdout, name).to.not.contain(name);
    });
  });
}
