import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SpireBinaries {
  dir: string;
  server: string;
  agent: string;
}

const buildScript = fileURLToPath(new URL('../build-spire.sh', import.meta.url));

let cached: Promise<SpireBinaries> | undefined;

/**
 * Paths of spire-server and spire-agent, built by hack/build-spire.sh on first use and taken from its
 * version-keyed cache afterwards. The script's progress goes to stderr so a cold build is visibly working.
 */
export function ensureSpireBinaries(): Promise<SpireBinaries> {
  cached ??= build();
  return cached;
}

async function build(): Promise<SpireBinaries> {
  const child = spawn('bash', [buildScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) {
    cached = undefined;
    throw new Error(`hack/build-spire.sh failed with exit code ${code}; its output above says why`);
  }
  const dir = out.trim().split('\n').at(-1) ?? '';
  return { dir, server: path.join(dir, 'spire-server'), agent: path.join(dir, 'spire-agent') };
}
