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

const buildScript = fileURLToPath(new URL('../build-control-plane.sh', import.meta.url));

let cached: Promise<Binaries> | undefined;

/**
 * Paths of the control-plane binaries, built by hack/build-control-plane.sh on first use and taken
 * from its version-keyed cache afterwards. The script's progress goes to stderr so a cold build is
 * visibly working rather than silent for minutes.
 */
export function ensureBinaries(): Promise<Binaries> {
  cached ??= build();
  return cached;
}

async function build(): Promise<Binaries> {
  const child = spawn('bash', [buildScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) {
    cached = undefined;
    throw new Error(`hack/build-control-plane.sh failed with exit code ${code}; its output above says why`);
  }
  const dir = out.trim().split('\n').at(-1) ?? '';
  const bin = (name: string) => path.join(dir, name);
  return {
    dir,
    etcd: bin('etcd'),
    kubeApiserver: bin('kube-apiserver'),
    kubeControllerManager: bin('kube-controller-manager'),
    kubectl: bin('kubectl'),
    helm: bin('helm'),
  };
}
