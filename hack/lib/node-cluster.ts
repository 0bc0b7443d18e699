// The control plane plus one real node (hack/lib/node.ts), started and torn down as one: per-run
// network namespace, addresses, ports, cgroup and directories, so a test run and a developer's cluster
// can coexist; teardown in the order that is fast and leaves the host as it was (controllers first so
// nothing recreates pods, then the node's daemons, everything left in the run's cgroup, its mounts,
// the control plane, the network namespace, stale shim sockets, and the host sysctls).
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ControlPlane } from './control-plane.ts';
import { LocalNode, type NodeOptions } from './node.ts';
import { NodeNetwork } from './node-network.ts';
import { RunCgroup } from './run-cgroup.ts';
import { describeProcess, killMarked, waitGone } from './run-processes.ts';
import { joinSysctlLedger, leaveSysctlLedger } from './sysctl-ledger.ts';

const run = promisify(execFile);
const shimDir = '/run/containerd/s';
// containerd's CNI library caches results here (not configurable in its CRI config).
const cniCacheDir = '/var/lib/cni';

/** Why this host cannot run a node, or undefined when it can. */
export async function nodeUnsupportedReason(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `a node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return 'a node needs root (kubelet, containerd and runc manage cgroups, mounts and namespaces)';
  try {
    await access('/sys/fs/cgroup/memory/cgroup.procs');
  } catch {
    try {
      await access('/sys/fs/cgroup/cgroup.controllers');
    } catch {
      return 'no cgroup hierarchy is mounted at /sys/fs/cgroup';
    }
  }
  for (const tool of ['nsenter', 'unshare', 'ip', 'mount']) {
    try {
      await run('which', [tool]);
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** Whether something accepts connections on the unix socket (a live shim) or not (stale). */
function socketAlive(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Mount points at or below `dir`, deepest first (mountinfo escapes spaces as \040). */
async function mountsBelow(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points = info
    .split('\n')
    .filter(Boolean)
    .map((l) =>
      (l.split(' ')[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    )
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export interface TeardownReport {
  killed: number;
  unmounted: number;
  shimSocketsRemoved: number;
  sysctlsRestored: string[];
  /** Processes of the run (its shims and their pods) found alive outside its cgroup, and killed. */
  outsideCgroup: string[];
  /** Killed processes still listed as zombies 10 s later (exited; their parent has not reaped them). */
  unreaped: string[];
}

export class NodeCluster {
  readonly dir: string;
  private readonly maybeCp: ControlPlane | undefined;
  private readonly maybeNode: LocalNode | undefined;
  readonly network: NodeNetwork;
  private readonly cgroup: RunCgroup;
  private readonly shimSocketsBefore: Set<string>;
  private readonly createdRunContainerd: boolean;
  private readonly createdCniCache: boolean;
  private stopped = false;

  private constructor(fields: {
    dir: string;
    cp: ControlPlane | undefined;
    node: LocalNode | undefined;
    network: NodeNetwork;
    cgroup: RunCgroup;
    shimSocketsBefore: Set<string>;
    createdRunContainerd: boolean;
    createdCniCache: boolean;
  }) {
    this.dir = fields.dir;
    this.maybeCp = fields.cp;
    this.maybeNode = fields.node;
    this.network = fields.network;
    this.cgroup = fields.cgroup;
    this.shimSocketsBefore = fields.shimSocketsBefore;
    this.createdRunContainerd = fields.createdRunContainerd;
    this.createdCniCache = fields.createdCniCache;
  }

  get cp(): ControlPlane {
    if (!this.maybeCp) throw new Error('the control plane did not start');
    return this.maybeCp;
  }

  get node(): LocalNode {
    if (!this.maybeNode) throw new Error('the node did not start');
    return this.maybeNode;
  }

  get kubeconfigPath(): string {
    return this.cp.kubeconfigPath;
  }

  /**
   * Starts everything and waits until the node is Ready and CoreDNS runs. `dir` holds all state (a
   * fresh temporary directory when omitted). On failure everything started so far is torn down.
   */
  static async start(
    opts: NodeOptions & { dir?: string; log?: (line: string) => void } = {},
  ): Promise<NodeCluster> {
    const reason = await nodeUnsupportedReason();
    if (reason) throw new Error(`cannot run a node here: ${reason}`);
    const log = opts.log ?? ((line: string) => console.error(`node-cluster: ${line}`));
    const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'svid-node-')));
    await mkdir(dir, { recursive: true });
    const shimSocketsBefore = new Set(await readdir(shimDir).catch(() => []));
    const createdRunContainerd = !(await exists('/run/containerd'));
    const createdCniCache = !(await exists(cniCacheDir));
    const network = await NodeNetwork.create(path.join(dir, 'net'));
    const cgroup = new RunCgroup(`svid-${network.id}`);
    let cp: ControlPlane | undefined;
    let node: LocalNode | undefined;
    const partial = () =>
      new NodeCluster({
        dir,
        cp,
        node,
        network,
        cgroup,
        shimSocketsBefore,
        createdRunContainerd,
        createdCniCache,
      });
    try {
      // The host's sysctls as before the first live node (another run's may be up already).
      await joinSysctlLedger(network.id);
      await cgroup.create();
      const a = network.addresses;
      log(
        `network namespace ${network.nsPath}, API server on ${a.hostIp}, node ${a.nodeIp}, pods ${a.podCidr}, Services ${a.serviceCidr}`,
      );
      cp = await ControlPlane.start({
        dir: path.join(dir, 'control-plane'),
        node: { address: a.hostIp, serviceCidr: a.serviceCidr, firstServiceIp: a.firstServiceIp },
        podCertificates: opts.podCertificates,
      });
      log(`control plane ready at ${cp.apiServerUrl}; starting containerd, kubelet and kube-proxy`);
      node = new LocalNode(cp, network, cgroup, path.join(dir, 'node'));
      await node.start(opts);
      log(`node ${node.name} is Ready; CoreDNS answers ${a.dnsServiceIp}`);
      return partial();
    } catch (err) {
      const cluster = partial();
      if (node) {
        for (const daemon of ['containerd', 'kubelet']) {
          const tail = await node.logTail(daemon, 15);
          if (tail) log(`${daemon} log tail:\n${tail}`);
        }
      }
      await cluster
        .stop()
        .catch((e: unknown) => log(`teardown after a failed start also failed: ${String(e)}`));
      throw err;
    }
  }

  /** Tears everything down (idempotent); returns what had to be cleaned. */
  async stop(): Promise<TeardownReport> {
    const report: TeardownReport = {
      killed: 0,
      unmounted: 0,
      shimSocketsRemoved: 0,
      sysctlsRestored: [],
      outsideCgroup: [],
      unreaped: [],
    };
    if (this.stopped) return report;
    this.stopped = true;
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    const cp = this.maybeCp;
    const node = this.maybeNode;
    if (cp) await attempt('stopping the controllers', () => cp.stopControllers());
    let containerIds: string[] = [];
    if (node)
      await attempt('listing containers', async () => {
        containerIds = await node.containerIds();
      });
    if (node) await attempt('stopping the node daemons', () => node.stopDaemons());
    const killed: number[] = [];
    await attempt('killing what is left in the run cgroup', async () => {
      killed.push(...(await this.cgroup.destroy()));
      report.killed = killed.length;
    });
    await attempt('killing processes of the run outside its cgroup', async () => {
      // The run's shims name its containerd socket; a pod's processes are their descendants.
      const marked = await killMarked(
        node?.containerdSocket ?? `/run/svid-${this.network.id}/containerd.sock`,
      );
      killed.push(...marked.pids);
      report.outsideCgroup = marked.described;
    });
    await attempt('waiting for the killed processes to be reaped', async () => {
      const left = await waitGone(killed);
      // A zombie has exited (no memory, files or sockets left): only its parent, for an orphan PID 1, can
      // take it off the process table. One that is still alive after SIGKILL is a failure.
      report.unreaped = await Promise.all(
        left.filter((p) => p.state === 'Z').map((p) => describeProcess(p.pid)),
      );
      const alive = left.filter((p) => p.state !== 'Z');
      if (alive.length) {
        const described = await Promise.all(alive.map((p) => describeProcess(p.pid)));
        throw new Error(`still alive 10 s after SIGKILL: ${described.join('; ')}`);
      }
    });
    const runDir = `/run/svid-${this.network.id}`;
    await attempt('unmounting', async () => {
      for (const point of [...(await mountsBelow(this.dir)), ...(await mountsBelow(runDir))]) {
        await run('umount', [point]).catch(() => run('umount', ['-l', point]));
        report.unmounted++;
      }
    });
    if (cp) await attempt('stopping the control plane', () => cp.stop());
    await attempt('removing the network namespace', () => this.network.destroy());
    await attempt('removing stale shim sockets', async () => {
      for (const name of await readdir(shimDir).catch(() => [])) {
        if (this.shimSocketsBefore.has(name)) continue;
        const file = path.join(shimDir, name);
        if (await socketAlive(file)) continue; // another node's live shim
        await rm(file, { force: true });
        report.shimSocketsRemoved++;
      }
      if (this.createdRunContainerd) {
        await rmdir(shimDir).catch(() => undefined);
        await rmdir('/run/containerd').catch(() => undefined);
      }
    });
    await attempt('removing CNI cache entries', async () => {
      const results = path.join(cniCacheDir, 'results');
      // <network>-<container id>-<interface>: our bridge network, and containerd's loopback for our pods.
      const prefix = `svid-${this.network.id}-`;
      for (const name of await readdir(results).catch(() => [])) {
        if (name.startsWith(prefix) || containerIds.some((id) => name.includes(`-${id}-`)))
          await rm(path.join(results, name), { force: true });
      }
      if (this.createdCniCache) {
        await rmdir(results).catch(() => undefined);
        await rmdir(cniCacheDir).catch(() => undefined);
      }
    });
    await attempt('restoring sysctls', async () => {
      // Restored by the last live node on this host (sysctl-ledger.ts); [] while another one runs.
      report.sysctlsRestored = await leaveSysctlLedger(this.network.id);
    });
    await attempt('removing the run directory', async () => {
      const left = await mountsBelow(this.dir);
      if (left.length) throw new Error(`still mounted: ${left.join(', ')}`);
      await rm(this.dir, { recursive: true, force: true });
      await rm(runDir, { recursive: true, force: true });
    });
    if (errors.length) throw new Error(`node teardown incomplete:\n  ${errors.join('\n  ')}`);
    return report;
  }
}
