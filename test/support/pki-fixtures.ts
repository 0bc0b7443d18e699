import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs openssl in a temporary directory with the given files; returns stdout+stderr and the exit code. */
export async function openssl(
  args: string[],
  files: Record<string, string> = {},
): Promise<{ code: number; output: string; dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'svid-openssl-'));
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const { stdout, stderr } = await run('openssl', args, { cwd: dir });
    return { code: 0, output: stdout + stderr, dir, cleanup };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      output: (e.stdout ?? '') + (e.stderr ?? ''),
      dir,
      cleanup,
    };
  }
}

/** A CA made by openssl itself, for the cases the project's own CA code refuses to create. */
export async function opensslCa(opts: {
  keyArgs: string[];
  extensions: string[];
  days?: number;
}): Promise<{ certPem: string; keyPem: string }> {
  const res = await openssl([
    'req',
    '-x509',
    '-new',
    ...opts.keyArgs,
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-subj',
    '/CN=test-ca',
    '-days',
    String(opts.days ?? 1),
    ...opts.extensions.flatMap((e) => ['-addext', e]),
  ]);
  if (res.code !== 0) throw new Error(`openssl failed: ${res.output}`);
  const certPem = await readFile(path.join(res.dir, 'ca.crt'), 'utf8');
  const keyPem = await readFile(path.join(res.dir, 'ca.key'), 'utf8');
  await res.cleanup();
  return { certPem, keyPem };
}

/** An intermediate CA signed by `root` with openssl: its certificate and key, PEM. */
export async function opensslIntermediate(
  root: { certPem: string; keyPem: string },
  keyArgs: string[] = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
): Promise<{ certPem: string; keyPem: string }> {
  const csr = await openssl(
    [
      'req',
      '-new',
      ...keyArgs,
      '-nodes',
      '-keyout',
      'int.key',
      '-subj',
      '/CN=intermediate',
      '-out',
      'int.csr',
    ],
    {
      'root.crt': root.certPem,
      'root.key': root.keyPem,
      'ext.cnf': 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n',
    },
  );
  try {
    if (csr.code !== 0) throw new Error(`openssl req failed: ${csr.output}`);
    const f = (name: string) => path.join(csr.dir, name);
    const sign = await openssl([
      'x509',
      '-req',
      '-in',
      f('int.csr'),
      '-CA',
      f('root.crt'),
      '-CAkey',
      f('root.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      f('ext.cnf'),
      '-out',
      f('int.crt'),
    ]);
    await sign.cleanup();
    if (sign.code !== 0) throw new Error(`openssl x509 failed: ${sign.output}`);
    return { certPem: await readFile(f('int.crt'), 'utf8'), keyPem: await readFile(f('int.key'), 'utf8') };
  } finally {
    await csr.cleanup();
  }
}

/**
 * `openssl s_server` on a free 127.0.0.1 port in `cwd`, resolved once it accepts. `output()` is everything
 * it printed so far (verification lines arrive asynchronously to the client's view).
 */
export async function startSServer(
  cwd: string,
  args: string[],
): Promise<{ port: number; output: () => string; stop: () => void }> {
  const { spawn } = await import('node:child_process');
  const { freePort } = await import('../../hack/lib/control-plane.ts');
  const port = await freePort();
  const s = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, ...args], { cwd });
  let out = '';
  s.stdout.on('data', (d: Buffer) => (out += d.toString()));
  s.stderr.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 50 && !out.includes('ACCEPT'); i++) await new Promise((r) => setTimeout(r, 100));
  if (!out.includes('ACCEPT')) throw new Error(`openssl s_server did not start: ${out}`);
  return { port, output: () => out, stop: () => void s.kill() };
}
