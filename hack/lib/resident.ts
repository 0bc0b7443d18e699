// Resident memory of a process by kind of mapping, from /proc/PID/smaps (for hack/profile-idle.ts and
// hack/profile-wave.ts): the node binary, the malloc heap, anonymous mappings (V8's heap lives there).
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Resident kB of a process's mappings, grouped by what they are. */
export async function residentByMapping(pid: number): Promise<Record<string, number>> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const out: Record<string, number> = {};
  let group = '';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const [, perms = '', file = ''] = head;
      const base = file ? path.basename(file) : '';
      group = !file
        ? `anonymous ${perms.includes('x') ? 'code' : 'data'}`
        : base === process.execPath.split('/').pop() || file === process.execPath
          ? `node binary ${perms.includes('x') ? 'code' : perms.includes('w') ? 'data' : 'read-only'}`
          : file === '[heap]'
            ? 'malloc heap ([heap])'
            : base.startsWith('lib')
              ? 'shared libraries'
              : file;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[group] = (out[group] ?? 0) + Number(rss[1]);
  }
  return out;
}
