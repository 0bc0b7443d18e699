// What a real node may change on the host, recorded so it can be restored and checked afterwards:
// kernel-wide sysctls (kubelet sets the first five; the bridge CNI and kube-proxy change the network
// ones in their network namespace, which on this host is the node's own, but they are recorded anyway
// in case a kernel treats them as global), and a snapshot of processes, mounts, network namespaces,
// links, iptables chains, cgroups and /run/containerd/s for the teardown test.
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { allProcs } from './run-processes.ts';

const run = promisify(execFile);

/** Every host sysctl a kubelet, CNI plugin or kube-proxy is known to write. */
export const watchedSysctls = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.forwarding',
  'net.ipv4.conf.all.route_localnet',
  'net.ipv6.conf.all.forwarding',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
  'net.netfilter.nf_conntrack_max',
  'net.netfilter.nf_conntrack_tcp_timeout_established',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
] as const;

const sysctlPath = (key: string) => path.join('/proc/sys', ...key.split('.'));

/** Current values of `keys` (absent keys are left out: the kernel may not have the module). */
export async function readSysctls(keys: readonly string[] = watchedSysctls): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (const key of keys) {
    try {
      values.set(key, (await readFile(sysctlPath(key), 'utf8')).trim());
    } catch {
      // not present on this kernel
    }
  }
  return values;
}

/** Writes back every value that differs now; returns the keys restored. */
export async function restoreSysctls(saved: Map<string, string>): Promise<string[]> {
  const restored: string[] = [];
  const now = await readSysctls([...saved.keys()]);
  for (const [key, value] of saved) {
    if (now.get(key) === value) continue;
    await writeFile(sysctlPath(key), value);
    restored.push(key);
  }
  return restored;
}

export interface HostSnapshot {
  processes: string[];
  mounts: string[];
  netns: string[];
  links: string[];
  iptablesChains: string[];
  cgroups: string[];
  shimSockets: string[];
  runContainerd: string[];
  runDirs: string[];
  cniCache: string[];
  sysctls: Record<string, string>;
}

async function lines(cmd: string, args: string[]): Promise<string[]> {
  try {
    const { stdout } = await run(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** Processes ("<pid> <comm>") whose executable is one of the node's programs, zombies left out. */
const nodePrograms = new Set([
  'kubelet',
  'kube-proxy',
  'kube-scheduler',
  'containerd',
  'containerd-shim',
  'containerd-shim-runc-v2',
  'runc',
  'coredns',
  'pause',
]);

async function nodeProcesses(): Promise<string[]> {
  const found: string[] = [];
  for (const p of await allProcs()) {
    // A zombie has exited: nothing of it runs or holds resources; only its parent can remove the entry.
    if (p.state === 'Z') continue;
    // comm is truncated to 15 characters.
    if ([...nodePrograms].some((name) => name.slice(0, 15) === p.comm)) found.push(`${p.pid} ${p.comm}`);
  }
  return found;
}

async function cgroupNames(): Promise<string[]> {
  const names: string[] = [];
  for (const hierarchy of await list('/sys/fs/cgroup')) {
    for (const entry of await list(path.join('/sys/fs/cgroup', hierarchy))) {
      if (entry.startsWith('svid-') || entry === 'kubepods' || entry === 'kubepods.slice')
        names.push(`${hierarchy}/${entry}`);
    }
  }
  return names;
}

async function chains(cmd: string): Promise<string[]> {
  return (await lines(cmd, [])).filter((l) => l.startsWith(':')).map((l) => `${cmd} ${l.split(' ')[0]}`);
}

/** The host state a node could leave behind. */
export async function snapshotHost(): Promise<HostSnapshot> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return {
    processes: await nodeProcesses(),
    mounts: mountinfo
      .split('\n')
      .filter(Boolean)
      .map((l) => `${l.split(' ')[4]} ${l.split(' - ')[1]?.split(' ')[0] ?? ''}`),
    netns: await list('/run/netns'),
    links: (await lines('ip', ['-o', 'link', 'show'])).map((l) => l.split(':')[1]?.trim() ?? l),
    iptablesChains: [...(await chains('iptables-save')), ...(await chains('ip6tables-save'))].sort(),
    cgroups: await cgroupNames(),
    shimSockets: await list('/run/containerd/s'),
    runContainerd: await list('/run/containerd'),
    runDirs: (await list('/run')).filter((d) => d.startsWith('svid-')),
    cniCache: await list('/var/lib/cni/results'),
    sysctls: Object.fromEntries(await readSysctls()),
  };
}
