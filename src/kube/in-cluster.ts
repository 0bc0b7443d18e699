// The in-cluster configuration of a pod: the API server from KUBERNETES_SERVICE_HOST/PORT (an IPv6
// address in brackets), the service account's CA and its (rotated) token, as client-go's InClusterConfig.
import path from 'node:path';
import type { DirectConfig } from './kubeconfig.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Whether the environment is a pod's (KUBERNETES_SERVICE_HOST and _PORT set). */
export function inCluster(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
}

export function inClusterConfig(env: NodeJS.ProcessEnv, accountDir = SERVICE_ACCOUNT_DIR): DirectConfig {
  const host = env.KUBERNETES_SERVICE_HOST?.trim() ?? '';
  const port = env.KUBERNETES_SERVICE_PORT?.trim() ?? '';
  if (!host || !port) {
    throw new Error(
      'not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set (set KUBECONFIG to run outside a pod)',
    );
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new Error(`KUBERNETES_SERVICE_PORT is "${port}", not a port number: unset it or set 1-65535`);
  }
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  let server: URL;
  try {
    server = new URL(`https://${bracketed}:${port}`);
  } catch {
    throw new Error(`KUBERNETES_SERVICE_HOST is "${host}", not a host name or address`);
  }
  return {
    server: server.origin,
    ca: { file: path.join(accountDir, 'ca.crt') },
    tokenFile: path.join(accountDir, 'token'),
    insecureSkipTlsVerify: false,
  };
}
