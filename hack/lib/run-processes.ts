// The processes of one node run found by what they are rather than by their cgroup, and waiting for
// killed processes to be gone. containerd's shims of a run name its socket on their command line
// (`-address <run dir>/containerd.sock`), and a pod's pause and container processes are descendants of
// its shim. The teardown kills the run's cgroup first; this is its second net, so a process that left the
// cgroup cannot outlive the run. A process killed is only gone once its parent (or, for an orphan, PID 1)
// has reaped it: until then /proc still lists it, as a zombie, so a check made right after a teardown
// would see it. The teardown waits for that.
import { readdir, readFile } from 'node:fs/promises';

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** The state letter of /proc/<pid>/stat: R, S, D, Z, T, ... */
  state: string;
  /** The executable's name as the kernel keeps it (at most 15 characters). */
  comm: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One line of /proc/<pid>/stat: "<pid> (<comm>) <state> <ppid> ...". comm may hold spaces and
 * parentheses, so it ends at the last ")". Undefined for anything else.
 */
export function parseStat(line: string): ProcInfo | undefined {
  const open = line.indexOf(' (');
  const close = line.lastIndexOf(') ');
  if (open < 1 || close < open) return undefined;
  const digits = line.slice(0, open);
  const [state, ppid] = line.slice(close + 2).split(' ');
  if (!/^\d{1,10}$/.test(digits) || !/^\d{1,10}$/.test(ppid ?? '')) return undefined;
  if (!state || !/^[A-Za-z]$/.test(state)) return undefined;
  const pid = Number(digits);
  if (pid < 1) return undefined;
  return { pid, ppid: Number(ppid), state, comm: line.slice(open + 2, close) };
}

/** The process `pid`, or undefined when it is gone (reaped). */
export async function readProc(pid: number): Promise<ProcInfo | undefined> {
  try {
    return parseStat((await readFile(`/proc/${pid}/stat`, 'utf8')).trim());
  } catch {
    return undefined;
  }
}

/** Every process /proc lists now. */
export async function allProcs(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = await readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

/** `roots` and every process below them (by parent PID). */
export function withDescendants(procs: readonly ProcInfo[], roots: Iterable<number>): Set<number> {
  const found = new Set(roots);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return found;
}

/** A process for an error message: PID, name, state, parent and cgroups (what says where it came from). */
export async function describeProcess(pid: number): Promise<string> {
  const p = await readProc(pid);
  if (!p) return `${pid} (gone)`;
  const cgroups = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  const paths = [
    ...new Set(
      cgroups
        .split('\n')
        .map((l) => l.split(':')[2])
        .filter(Boolean),
    ),
  ];
  return `${pid} ${p.comm} state=${p.state} ppid=${p.ppid} cgroups=${paths.join(',') || '?'}`;
}

/**
 * Waits until none of `pids` is listed by /proc any more, at most `timeoutMs`; returns the ones still
 * there (a zombie nobody reaped, or a process that did not die).
 */
export async function waitGone(pids: Iterable<number>, timeoutMs = 10_000): Promise<ProcInfo[]> {
  const deadline = Date.now() + timeoutMs;
  let left = [...pids];
  for (;;) {
    const still: ProcInfo[] = [];
    for (const pid of left) {
      const p = await readProc(pid);
      if (p) still.push(p);
    }
    if (still.length === 0 || Date.now() >= deadline) return still;
    left = still.map((p) => p.pid);
    await sleep(100);
  }
}

/**
 * SIGKILLs every live process whose command line contains `marker` (a path only this run uses), with
 * all its descendants; returns their descriptions, taken before the kill.
 */
export async function killMarked(marker: string): Promise<{ pids: number[]; described: string[] }> {
  if (marker.length < 8) throw new Error(`refusing to kill by the short marker ${JSON.stringify(marker)}`);
  const procs = (await allProcs()).filter((p) => p.state !== 'Z' && p.pid !== process.pid);
  const roots: number[] = [];
  for (const p of procs) {
    const cmd = await readFile(`/proc/${p.pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').some((arg) => arg.includes(marker))) roots.push(p.pid);
  }
  const pids = [...withDescendants(procs, roots)].filter((pid) => pid !== process.pid);
  const described: string[] = [];
  for (const pid of pids) described.push(await describeProcess(pid));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return { pids, described };
}
