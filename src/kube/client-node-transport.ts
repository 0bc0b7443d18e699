// Requests authenticated by @kubernetes/client-node's KubeConfig, for the kubeconfig features we do not
// implement ourselves (exec plugins, auth providers, proxies, basic auth, merged KUBECONFIG lists). Only
// import this module dynamically: loading client-node costs ~85 MB of memory, which only those users pay.
import * as k8s from '@kubernetes/client-node';
import type { Dispatcher } from 'undici';
import type { Connection, KubeTransport } from './connection.ts';
import { PooledKubeConfig } from './pooled-kubeconfig.ts';

/** How long one answer of the KubeConfig's authentication serves requests. */
const AUTH_REUSE_MS = 1000;

/** A transport over a KubeConfig loaded from `files` (KUBECONFIG's list, merged as kubectl does). */
export function clientNodeTransportFromFiles(files: string[]): KubeTransport {
  const kc = new PooledKubeConfig();
  if (files.length === 1) kc.loadFromFile(files[0] as string);
  else kc.loadFromDefault({}, false);
  return clientNodeTransport(kc);
}

/**
 * A transport over `kc` (best a PooledKubeConfig, whose connections are reused). The server, headers and
 * dispatcher it gives are reused for AUTH_REUSE_MS: asking for them costs as much CPU as a request
 * (client-node decodes and reads every certificate and key each time). A rotated token or client
 * certificate is picked up within that time; a failure is not remembered.
 */
export function clientNodeTransport(kc: k8s.KubeConfig): KubeTransport {
  let auth: { at: number; value: Promise<Connection> } | undefined;
  const cluster = kc.getCurrentCluster();
  return {
    connection() {
      const now = performance.now();
      if (auth && now - auth.at < AUTH_REUSE_MS) return auth.value;
      const value = authenticate(kc);
      auth = { at: now, value };
      value.catch(() => {
        if (auth?.value === value) auth = undefined;
      });
      return value;
    },
    close: async () => {},
    description: `${cluster?.server ?? '(no cluster)'} (through @kubernetes/client-node)`,
  };
}

async function authenticate(kc: k8s.KubeConfig): Promise<Connection> {
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new Error(
      'no current cluster in the kubeconfig: choose a context with `kubectl config use-context`',
    );
  const server = new URL(cluster.server);
  const ctx = new k8s.RequestContext(server.toString(), k8s.HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  // client-node's undici may be another copy than ours; the dispatcher interface is the same.
  const dispatcher = ctx.getDispatcher() as unknown as Dispatcher | undefined;
  return {
    origin: server.origin,
    pathPrefix: server.pathname.replace(/\/+$/, ''),
    headers: ctx.getHeaders(),
    dispatcher: dispatcher ?? (await import('undici')).getGlobalDispatcher(),
  };
}
