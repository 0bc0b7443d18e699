// The node's own network namespace: kubelet, containerd, kube-proxy and (through the bridge CNI
// plugin) every pod live behind it, so the bridge, the KUBE-* and CNI-* iptables chains and the
// forwarding / route_localnet sysctls they set stay inside and leave with it. A veth pair joins it to
// the host; the API server listens on the host end. There is no default route inside: pod traffic can
// reach the API server and other pods, nothing else, and nothing is routed off this machine.
//
// All addresses of a run come from one /24 of 100.64.0.0/10 chosen at random and checked against the
// host's routes: the /30 transit link (.1 host, .2 node), Services in .64/26, pods in .128/25.
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface NodeAddresses {
  /** Host end of the veth pair: the API server's address. */
  hostIp: string;
  /** Node end: the kubelet's node IP. */
  nodeIp: string;
  serviceCidr: string;
  firstServiceIp: string;
  dnsServiceIp: string;
  podCidr: string;
  podGateway: string;
}

/** Addresses for the /24 `100.<b>.<c>.0`. */
export function nodeAddresses(b: number, c: number): NodeAddresses {
  const net = `100.${b}.${c}`;
  return {
    hostIp: `${net}.1`,
    nodeIp: `${net}.2`,
    serviceCidr: `${net}.64/26`,
    firstServiceIp: `${net}.65`,
    dnsServiceIp: `${net}.74`,
    podCidr: `${net}.128/25`,
    podGateway: `${net}.129`,
  };
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** Whether the CIDRs a and b overlap. */
export function overlaps(a: string, b: string): boolean {
  const [ipA, lenA = '32'] = a.split('/');
  const [ipB, lenB = '32'] = b.split('/');
  const len = Math.min(Number(lenA), Number(lenB));
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (toInt(ipA ?? '') & mask) >>> 0 === (toInt(ipB ?? '') & mask) >>> 0;
}

export class NodeNetwork {
  readonly id: string;
  readonly nsPath: string;
  readonly hostLink: string;
  readonly nodeLink: string;
  readonly bridge: string;
  readonly addresses: NodeAddresses;
  private created = false;

  private constructor(dir: string, id: string, addresses: NodeAddresses) {
    this.id = id;
    this.nsPath = path.join(dir, 'netns');
    this.hostLink = `svh${id}`;
    this.nodeLink = `svn${id}`;
    this.bridge = `svb${id}`;
    this.addresses = addresses;
  }

  /** Chooses names and a /24 free on this host, and creates the namespace and the veth pair. */
  static async create(dir: string): Promise<NodeNetwork> {
    const { stdout } = await run('ip', ['-4', '-o', 'route', 'show', 'table', 'all']);
    const { stdout: addrs } = await run('ip', ['-4', '-o', 'addr', 'show']);
    const taken = [
      ...stdout
        .split('\n')
        .map((l) =>
          l.split(' ')[0] === 'local' || l.split(' ')[0] === 'broadcast' ? l.split(' ')[1] : l.split(' ')[0],
        ),
      ...addrs.split('\n').map((l) => l.split(/\s+/)[3]),
    ].filter((c): c is string => !!c && /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(c));
    for (let attempt = 0; attempt < 50; attempt++) {
      const b = 64 + randomInt(64);
      const c = randomInt(256);
      if (taken.some((t) => overlaps(t, `100.${b}.${c}.0/24`))) continue;
      const net = new NodeNetwork(dir, randomBytes(3).toString('hex'), nodeAddresses(b, c));
      await net.setUp();
      return net;
    }
    throw new Error('no free /24 in 100.64.0.0/10 for the node network after 50 tries');
  }

  /** Runs a command inside the node's network namespace (and only that: the mount namespace is the host's). */
  exec(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run('nsenter', [`--net=${this.nsPath}`, '--', cmd, ...args], { maxBuffer: 64 * 1024 * 1024 });
  }

  private async setUp(): Promise<void> {
    await mkdir(path.dirname(this.nsPath), { recursive: true });
    await writeFile(this.nsPath, '');
    // A persistent namespace bind-mounted on a file of this run (not /run/netns, which `ip netns`
    // would turn into a shared mount that outlives us).
    await run('unshare', [`--net=${this.nsPath}`, 'true']);
    this.created = true;
    const a = this.addresses;
    await this.exec('ip', ['link', 'set', 'lo', 'up']);
    await this.exec('ip', [
      'link',
      'add',
      this.nodeLink,
      'type',
      'veth',
      'peer',
      'name',
      this.hostLink,
      'netns',
      String(process.pid),
    ]);
    await run('ip', ['addr', 'add', `${a.hostIp}/30`, 'dev', this.hostLink]);
    await run('ip', ['link', 'set', this.hostLink, 'up']);
    await this.exec('ip', ['addr', 'add', `${a.nodeIp}/30`, 'dev', this.nodeLink]);
    await this.exec('ip', ['link', 'set', this.nodeLink, 'up']);
  }

  /** Deletes the veth pair (both ends) and the namespace; every link inside goes with it. */
  async destroy(): Promise<void> {
    if (!this.created) return;
    await run('ip', ['link', 'del', this.hostLink]).catch(() => undefined);
    await run('umount', [this.nsPath]).catch(() => run('umount', ['-l', this.nsPath]).catch(() => undefined));
    await rm(this.nsPath, { force: true });
    this.created = false;
  }
}
