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
