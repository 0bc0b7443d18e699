import { createHash } from 'node:crypto';
import type https from 'node:https';
import * as k8s from '@kubernetes/client-node';

type RequestContext = Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0];
// client-node's own undici, which may be another copy than the one this package depends on.
type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;
type CreateDispatcher = (
  cluster: k8s.Cluster | null,
  agentOptions: https.AgentOptions,
) => Dispatcher | undefined;

/**
 * A KubeConfig whose API clients reuse their connections. client-node 2.0 builds a new undici Agent for
 * every request, so every call opened a TCP connection and did a full TLS handshake with a client
 * certificate: measured on a wave of 1,000 issuances, that was the largest share of the operator's CPU
 * and much of the API server's. Here one Agent serves every request made with the same TLS settings (CA,
 * client certificate and key as configured at that moment); when they change (a rotated client
 * certificate), the next request gets a new Agent and the old one closes once its requests finish.
 *
 * The Agent is chosen where client-node makes it (its createDispatcher, called by
 * applySecurityAuthentication with the TLS settings just read), so no Agent is built only to be closed
 * again: closing one per request cost a ClientDestroyedError with its stack trace each time.
 */
export class PooledKubeConfig extends k8s.KubeConfig {
  private pool?: { key: string; dispatcher: Dispatcher };

  constructor() {
    super();
    const self = this as unknown as { createDispatcher?: CreateDispatcher };
    const create = self.createDispatcher;
    if (typeof create !== 'function') {
      throw new Error(
        '@kubernetes/client-node has no KubeConfig.createDispatcher: PooledKubeConfig needs updating',
      );
    }
    self.createDispatcher = (cluster, agentOptions) => {
      const key = tlsKey(cluster, agentOptions);
      if (this.pool?.key === key) return this.pool.dispatcher;
      const dispatcher = create.call(this, cluster, agentOptions);
      if (!dispatcher) return undefined;
      const old = this.pool?.dispatcher;
      this.pool = { key, dispatcher };
      void old?.close();
      return dispatcher;
    };
  }
}

/** What decides the connection: the server, proxy and every TLS setting client-node passes to the Agent. */
function tlsKey(cluster: k8s.Cluster | null, opts: https.AgentOptions): string {
  const hash = createHash('sha256');
  hash.update(`${cluster?.server ?? ''}\0${cluster?.proxyUrl ?? ''}\0${opts.servername ?? ''}\0`);
  hash.update(`${String(opts.rejectUnauthorized)}\0${String(opts.passphrase ?? '')}\0`);
  for (const part of [opts.ca, opts.cert, opts.key, opts.pfx]) {
    for (const item of [part ?? ''].flat()) {
      hash.update(typeof item === 'string' || Buffer.isBuffer(item) ? item : String(item)).update('\0');
    }
  }
  return hash.digest('hex');
}
