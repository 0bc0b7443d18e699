// A cgroup of our own in every mounted hierarchy (cgroup v1 here, plus the unified one of a hybrid
// host), named for one run: the node's daemons, the containerd shims they start and, through the
// kubelet's cgroupRoot, every pod live below it. Teardown kills whatever is inside and removes it, so
// nothing of a run survives it even when a daemon died without cleaning up.
import { appendFile, mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

const root = '/sys/fs/cgroup';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function hierarchies(): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(root)) {
    const dir = path.join(root, name);
    try {
      await stat(path.join(dir, 'cgroup.procs'));
      found.push(dir);
    } catch {
      // not a hierarchy (or a symlink to a combined one, e.g. cpu,cpuacct)
    }
  }
  return found;
}

/** Directories below (and including) `dir`, deepest first. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...(await tree(path.join(dir, e.name))));
  out.push(dir);
  return out;
}

export class RunCgroup {
  /** e.g. "svid-3fa2c1": the kubelet's cgroupRoot is "/" + name. */
  readonly name: string;
  private dirs: string[] = [];

  constructor(name: string) {
    if (!/^svid-[a-z0-9-]+$/.test(name)) throw new Error(`unexpected run cgroup name ${name}`);
    this.name = name;
  }

  /** Creates <hierarchy>/<name> and <hierarchy>/<name>/daemons everywhere. */
  async create(): Promise<void> {
    for (const h of await hierarchies()) {
      const dir = path.join(h, this.name);
      for (const d of [dir, path.join(dir, 'daemons')]) {
        await mkdir(d, { recursive: true });
        // A v1 cpuset cgroup takes no task until its cpus and mems are set: inherit the parent's.
        if (path.basename(h) === 'cpuset') {
          // (read and written, not copyFile: cgroupfs files report size 0, so a copy would write nothing)
          for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            await writeFile(path.join(d, f), await readFile(path.join(path.dirname(d), f), 'utf8'));
          }
        }
      }
      this.dirs.push(dir);
    }
  }

  /** Moves a process (and so its future children) into <name>/daemons in every hierarchy. */
  async adopt(pid: number): Promise<void> {
    for (const dir of this.dirs) await appendFile(path.join(dir, 'daemons', 'cgroup.procs'), `${pid}\n`);
  }

  /** Every process in the run's cgroups, in any hierarchy. */
  async pids(): Promise<Set<number>> {
    const pids = new Set<number>();
    for (const h of await hierarchies()) {
      for (const dir of await tree(path.join(h, this.name))) {
        try {
          for (const p of (await readFile(path.join(dir, 'cgroup.procs'), 'utf8')).split('\n'))
            if (p) pids.add(Number(p));
        } catch {
          // removed meanwhile
        }
      }
    }
    return pids;
  }

  /**
   * SIGKILLs everything inside until nothing is left (at most 20 rounds), then removes the cgroups
   * deepest first. Returns the PIDs it killed (an exited process leaves its cgroup at once, but /proc
   * lists it until it is reaped: see run-processes.ts waitGone).
   */
  async destroy(): Promise<number[]> {
    const killed: number[] = [];
    for (let round = 0; round < 20; round++) {
      const pids = await this.pids();
      if (pids.size === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
          killed.push(pid);
        } catch {
          // already gone
        }
      }
      await sleep(250);
    }
    const left: string[] = [];
    for (const h of await hierarchies()) {
      for (const dir of await tree(path.join(h, this.name))) {
        let removed = false;
        for (let attempt = 0; attempt < 20 && !removed; attempt++) {
          try {
            await rmdir(dir);
            removed = true;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') removed = true;
            else await sleep(100);
          }
        }
        if (!removed) left.push(dir);
      }
    }
    if (left.length) throw new Error(`cgroups could not be removed (still busy): ${left.join(', ')}`);
    return killed;
  }
}
