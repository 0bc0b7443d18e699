// Kernel-wide sysctls are one per host, but node clusters are per run: a second cluster started while a
// first one runs would record the first kubelet's values as "before", and if the first stopped earlier the
// second would put those values back for good. So the values before the first live run are kept in one
// ledger file with the runs using it (id and owning pid); each run joins on start and leaves on stop, and
// the last live run to leave restores the values and removes the ledger. A run that died without leaving
// is dropped (its pid is gone), and the values it found stay the ones to restore.
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { readSysctls, restoreSysctls } from './host-state.ts';

interface Ledger {
  originals: Record<string, string>;
  runs: { id: string; pid: number }[];
}

export interface LedgerDeps {
  file: string;
  alive(pid: number): boolean;
  read(): Promise<Map<string, string>>;
  restore(saved: Map<string, string>): Promise<string[]>;
  pid: number;
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export const hostLedger: LedgerDeps = {
  file: '/run/svid-node-sysctls.json',
  alive: pidAlive,
  read: () => readSysctls(),
  restore: restoreSysctls,
  pid: process.pid,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` holding `<file>.lock` (created exclusively; a lock whose holder died is broken). */
async function locked<T>(deps: LedgerDeps, fn: () => Promise<T>): Promise<T> {
  const lock = `${deps.file}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const h = await open(lock, 'wx');
      await h.writeFile(String(deps.pid));
      await h.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (holder > 0 && !deps.alive(holder)) await rm(lock, { force: true });
      else if (attempt >= 600)
        throw new Error(`${lock} is held by pid ${holder} for more than 30 s`, { cause: err });
      else await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

async function load(file: string): Promise<Ledger | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Ledger;
  } catch {
    return undefined;
  }
}

/** Records this run; the first live run records the sysctls as they are now. */
export function joinSysctlLedger(runId: string, deps: LedgerDeps = hostLedger): Promise<void> {
  return locked(deps, async () => {
    const ledger = (await load(deps.file)) ?? {
      originals: Object.fromEntries(await deps.read()),
      runs: [],
    };
    ledger.runs = ledger.runs.filter((r) => r.id !== runId && deps.alive(r.pid));
    ledger.runs.push({ id: runId, pid: deps.pid });
    await writeFile(deps.file, JSON.stringify(ledger));
  });
}

/** Removes this run; the last live run restores the recorded sysctls. Returns the keys restored. */
export function leaveSysctlLedger(runId: string, deps: LedgerDeps = hostLedger): Promise<string[]> {
  return locked(deps, async () => {
    const ledger = await load(deps.file);
    if (!ledger) return [];
    ledger.runs = ledger.runs.filter((r) => r.id !== runId && deps.alive(r.pid));
    if (ledger.runs.length) {
      await writeFile(deps.file, JSON.stringify(ledger));
      return [];
    }
    const restored = await deps.restore(new Map(Object.entries(ledger.originals)));
    await rm(deps.file, { force: true });
    return restored;
  });
}
