// Finds the API server's configuration as kubectl and client-node's loadFromDefault do, in this order:
// $KUBECONFIG, ~/.kube/config, the pod's in-cluster configuration. A kubeconfig that needs a feature we do
// not implement is handed to @kubernetes/client-node, imported only then.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fs } from '../builtins.ts';
import { KubeClient } from './client.ts';
import type { KubeTransport } from './connection.ts';
import { directTransport, type DirectTransportOptions } from './direct-transport.ts';
import { inCluster, inClusterConfig, SERVICE_ACCOUNT_DIR } from './in-cluster.ts';
import { KubeconfigError, resolveKubeconfig } from './kubeconfig.ts';

export interface LoadOptions {
  /** Home directory for ~/.kube/config. Default os.homedir(). */
  home?: string;
  /** The service account's directory in a pod. */
  serviceAccountDir?: string;
  /**
   * Connections open at once for requests (direct-transport.ts); watches have their own. Applies to plain
   * kubeconfigs and the in-cluster configuration; a kubeconfig handed to client-node uses its pool.
   */
  connections?: number;
}

/** A client for the API server the environment points at. */
export async function loadKubeClient(env: NodeJS.ProcessEnv, o: LoadOptions = {}): Promise<KubeClient> {
  return new KubeClient(await loadTransport(env, o));
}

export async function loadTransport(env: NodeJS.ProcessEnv, o: LoadOptions = {}): Promise<KubeTransport> {
  const listed = (env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  if (listed.length > 1) {
    // Merging several kubeconfigs is client-node's (and kubectl's) job.
    const { clientNodeTransportFromFiles } = await import('./client-node-transport.ts');
    return clientNodeTransportFromFiles(listed);
  }
  const direct = { ...(o.connections !== undefined && { connections: o.connections }) };
  if (listed.length === 1) return kubeconfigTransport(listed[0] as string, direct);
  const home = path.join(o.home ?? os.homedir(), '.kube', 'config');
  if (fs.existsSync(home)) return kubeconfigTransport(home, direct);
  if (inCluster(env))
    return directTransport(inClusterConfig(env, o.serviceAccountDir ?? SERVICE_ACCOUNT_DIR), direct);
  throw new KubeconfigError(
    `no Kubernetes configuration found: KUBECONFIG is not set, ${home} does not exist, and KUBERNETES_SERVICE_HOST/PORT are not set; set KUBECONFIG to a kubeconfig file, or run in a pod with a service account`,
  );
}

/** The transport for one kubeconfig file. */
export async function kubeconfigTransport(
  file: string,
  o: DirectTransportOptions = {},
): Promise<KubeTransport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new KubeconfigError(
      `kubeconfig ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); set KUBECONFIG to an existing kubeconfig file`,
      { cause: err },
    );
  }
  const resolved = resolveKubeconfig(text, file);
  if (resolved.kind === 'direct') return directTransport(resolved.config, o);
  const { clientNodeTransportFromFiles } = await import('./client-node-transport.ts');
  return clientNodeTransportFromFiles([file]);
}
