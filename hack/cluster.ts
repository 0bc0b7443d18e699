// `npm run cluster:up` / `npm run cluster:down`: the tests' local control plane, kept running in the
// background for people (the demo, developers, reviewers with kubectl). State lives in .cluster/.
//
//   up [--node]  reuse a running control plane or start one, install crds/, print KUBECONFIG=<path> last;
//                with --node also a scheduler and one real node (kubelet + containerd, root only),
//                see hack/lib/node-cluster.ts
//   down         stop it (and the node, restoring the host) and remove .cluster/
//   serve  (internal) the detached supervisor that owns the etcd / API server / controller-manager processes
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { ensureBinaries, ensureNodeBinaries } from './lib/binaries.ts';
import { ControlPlane, readyz } from './lib/control-plane.ts';
import { installCrds } from './lib/crds.ts';
import { NodeCluster } from './lib/node-cluster.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
export const clusterDir = path.join(root, '.cluster');
const stateFile = path.join(clusterDir, 'state.json');
const supervisorLog = path.join(clusterDir, 'supervisor.log');

interface State {
  supervisorPid: number;
  kubeconfigPath: string;
  apiServerUrl: string;
  pkiDir: string;
  node: boolean;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readState(): Promise<State | undefined> {
  try {
    return JSON.parse(await readFile(stateFile, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts (or reuses) the background control plane with the CRDs installed; returns its kubeconfig path. */
export async function clusterUp(withNode = false): Promise<string> {
  const state = await readState();
  if (
    state &&
    alive(state.supervisorPid) &&
    state.node === withNode &&
    (await readyz(state.apiServerUrl, state.pkiDir).catch(() => false))
  ) {
    console.error(`cluster: reusing the ${withNode ? 'cluster' : 'control plane'} at ${state.apiServerUrl}`);
  } else {
    if (state && alive(state.supervisorPid)) await clusterDown();
    await rm(clusterDir, { recursive: true, force: true });
    await mkdir(clusterDir, { recursive: true });
    // Build (or find cached) binaries in the foreground so a first build shows its progress here.
    await ensureBinaries();
    if (withNode) {
      console.error('cluster: building (first run only) and starting a control plane with one real node');
      await ensureNodeBinaries();
    } else {
      console.error('cluster: starting etcd, kube-apiserver and kube-controller-manager on 127.0.0.1');
    }
    const log = openSync(supervisorLog, 'a');
    const child = spawn(
      process.execPath,
      [fileURLToPath(import.meta.url), withNode ? 'serve-node' : 'serve'],
      {
        detached: true,
        stdio: ['ignore', log, log],
      },
    );
    closeSync(log);
    child.unref();
    const timeoutMs = withNode ? 600_000 : 180_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const started = await readState();
      if (started) break;
      if (child.exitCode !== null || !alive(child.pid ?? 0)) {
        throw new Error(
          `the control plane failed to start; see ${supervisorLog} and the logs in ${clusterDir}/data`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`the control plane did not start within ${timeoutMs / 1000} s; see ${supervisorLog}`);
      await sleep(250);
    }
  }
  const ready = await readState();
  if (!ready) throw new Error(`${stateFile} disappeared while starting`);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(ready.kubeconfigPath);
  const crds = await installCrds(kc);
  console.error(`cluster: CRDs installed: ${crds.join(', ')}`);
  return ready.kubeconfigPath;
}

export async function clusterDown(): Promise<void> {
  const state = await readState();
  if (state && alive(state.supervisorPid)) {
    process.kill(state.supervisorPid, 'SIGTERM');
    // A node's teardown (pods, mounts, network namespace, sysctls) takes longer than a control plane's.
    const deadline = Date.now() + (state.node ? 120_000 : 30_000);
    while (alive(state.supervisorPid) && Date.now() < deadline) await sleep(200);
    if (alive(state.supervisorPid)) process.kill(state.supervisorPid, 'SIGKILL');
  }
  await rm(clusterDir, { recursive: true, force: true });
}

async function serve(): Promise<void> {
  const cp = await ControlPlane.start({ dir: path.join(clusterDir, 'data') });
  const state: State = {
    supervisorPid: process.pid,
    kubeconfigPath: cp.kubeconfigPath,
    apiServerUrl: cp.apiServerUrl,
    pkiDir: path.join(cp.dir, 'pki'),
    node: false,
  };
  await writeFile(stateFile, JSON.stringify(state, null, 2));
  console.log(`control plane ready at ${cp.apiServerUrl}`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await cp.stop();
}

async function serveNode(): Promise<void> {
  const cluster = await NodeCluster.start({ dir: path.join(clusterDir, 'data') });
  const state: State = {
    supervisorPid: process.pid,
    kubeconfigPath: cluster.kubeconfigPath,
    apiServerUrl: cluster.cp.apiServerUrl,
    pkiDir: cluster.cp.pkiDir,
    node: true,
  };
  await writeFile(stateFile, JSON.stringify(state, null, 2));
  console.log(`cluster ready at ${cluster.cp.apiServerUrl} with node ${cluster.node.name}`);
  const daemon = cluster.node.anyExit();
  const signal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const why = await Promise.race([signal, daemon.then((name) => `${name} exited`)]);
  console.log(`stopping: ${why}`);
  const report = await cluster.stop();
  console.log(`stopped: ${JSON.stringify(report)}`);
}

async function main(command: string | undefined, flags: string[]): Promise<void> {
  switch (command) {
    case 'up': {
      const unknown = flags.filter((f) => f !== '--node');
      if (unknown.length) throw new Error(`unknown option ${unknown.join(' ')}; usage: cluster up [--node]`);
      const kubeconfig = await clusterUp(flags.includes('--node'));
      console.log(`KUBECONFIG=${kubeconfig}`);
      return;
    }
    case 'down':
      await clusterDown();
      console.error('cluster: stopped and removed .cluster/');
      return;
    case 'serve':
      await serve();
      return;
    case 'serve-node':
      await serveNode();
      return;
    default:
      throw new Error(`usage: node hack/cluster.ts up [--node] | down (got ${command ?? 'nothing'})`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv[2], process.argv.slice(3)).catch((err: unknown) => {
    console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
