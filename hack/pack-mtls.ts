// npm run -s pack:mtls: builds the @svid-operator/mtls package and packs it. The last line printed is the
// absolute path of the .tgz (in .cache/mtls-pack/, which is git-ignored), for tests and for installing it
// elsewhere: `npm install "$(npm run -s pack:mtls | tail -1)"`.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Builds and packs the package into `dest`; returns the absolute path of the tarball. */
export async function packMtls(dest = path.join(root, '.cache', 'mtls-pack')): Promise<string> {
  await mkdir(dest, { recursive: true });
  const npm = process.env.npm_execpath;
  // npm runs the package's prepack script (a clean build) before packing.
  const [cmd, args] = npm ? [process.execPath, [npm]] : ['npm', []];
  const { stdout } = await promisify(execFile)(
    cmd,
    [...args, 'pack', '--json', '--pack-destination', dest, '-w', '@svid-operator/mtls'],
    { cwd: root, maxBuffer: 16 * 1024 * 1024 },
  );
  const [result] = JSON.parse(stdout.slice(stdout.indexOf('['))) as [{ filename: string }];
  return path.join(dest, result.filename);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(await packMtls());
}
