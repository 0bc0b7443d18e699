import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Binaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  helm: string;
}

/** The real node's binaries (hack/build-node.sh), in their own version-keyed cache directory. */
export interface NodeBinaries {
  dir: string;
  kubelet: string;
  kubeScheduler: string;
  kubeProxy: string;
  containerd: string;
  ctr: string;
  runc: string;
  coredns: string;
  pause: string;
}

const hack = (name: string) => fileURLToPath(new URL(`../${name}`, import.meta.url));

let cached: Promise<Binaries> | undefined;
let cachedNode: Promise<NodeBinaries> | undefined;

/**
 * Paths of the control-plane binaries, built by hack/build-control-plane.sh on first use and taken
 * from its version-keyed cache afterwards. The script's progress goes to stderr so a cold build is
 * visibly working rather than silent for minutes.
 */
export function ensureBinaries(): Promise<Binaries> {
  cached ??= runBuildScript('build-control-plane.sh').then((dir) => {
    const bin = (name: string) => path.join(dir, name);
    return {
      dir,
      etcd: bin('etcd'),
      kubeApiserver: bin('kube-apiserver'),
      kubeControllerManager: bin('kube-controller-manager'),
      kubectl: bin('kubectl'),
      helm: bin('helm'),
    };
  });
  cached.catch(() => (cached = undefined));
  return cached;
}

/** Like ensureBinaries, for the node (hack/build-node.sh; installs Debian packages it needs as root). */
export function ensureNodeBinaries(): Promise<NodeBinaries> {
  cachedNode ??= runBuildScript('build-node.sh').then((dir) => {
    const bin = (name: string) => path.join(dir, name);
    return {
      dir,
      kubelet: bin('kubelet'),
      kubeScheduler: bin('kube-scheduler'),
      kubeProxy: bin('kube-proxy'),
      containerd: bin('containerd'),
      ctr: bin('ctr'),
      runc: bin('runc'),
      coredns: bin('coredns'),
      pause: bin('pause'),
    };
  });
  cachedNode.catch(() => (cachedNode = undefined));
  return cachedNode;
}

/** Runs a hack/ build script with its progress on our stderr; its last stdout line is the bin dir. */
export async function runBuildScript(script: string, args: string[] = []): Promise<string> {
  const child = spawn('bash', [hack(script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) {
    throw new Error(`hack/${script} failed with exit code ${code}; its output above says why`);
  }
  return out.trim().split('\n').at(-1) ?? '';
}
