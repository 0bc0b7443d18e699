import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';

/** Runs `bin` with `args` (and `input` on stdin); its stdout, or an error with its stderr when it fails. */
export async function exec(bin: string, args: string[], input?: string): Promise<string> {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end(input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')} failed (${code}): ${err.trim()}`);
  return out;
}
