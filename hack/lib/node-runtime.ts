// Other Node.js versions for tests, from the npm registry (the `node` package, as the project's own Node 24
// comes): installed once into the cache (~/.cache/svid-operator or $SVID_CACHE_DIR) and reused.
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** The Node 22 release the library's consumer test runs on (the older active LTS line). */
export const NODE22_VERSION = '22.23.3';

const cacheRoot = () => process.env.SVID_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'svid-operator');

/** npm as a [command, ...args] prefix: the npm that runs this script when there is one, else npm on PATH. */
export function npmCommand(): [string, string[]] {
  const cli = process.env.npm_execpath;
  return cli && cli.endsWith('.js') ? [process.execPath, [cli]] : ['npm', []];
}

/** The path of a `node` binary of `version`, installed from the npm registry on first use. */
export async function ensureNode(version = NODE22_VERSION): Promise<string> {
  const dir = path.join(cacheRoot(), `node-${version}`);
  const bin = path.join(dir, 'node_modules', 'node', 'bin', 'node');
  if (
    await access(bin).then(
      () => true,
      () => false,
    )
  )
    return bin;
  await mkdir(cacheRoot(), { recursive: true });
  const tmp = await mkdtemp(`${dir}.tmp-`);
  try {
    await writeFile(path.join(tmp, 'package.json'), '{ "private": true }\n');
    const [cmd, args] = npmCommand();
    await promisify(execFile)(cmd, [...args, 'install', '--no-audit', '--no-fund', `node@${version}`], {
      cwd: tmp,
      env: { ...process.env, NODE_OPTIONS: '' },
      maxBuffer: 16 * 1024 * 1024,
    });
    // Atomic: a concurrent run either sees the complete directory or installs its own copy.
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return bin;
}
