import { createHash } from 'node:crypto';
import type https from 'node:https';
import * as k8s from '@kubernetes/client-node';

type RequestContext = Parameters<k8s.KubeConfig['applySecurityAuthentication']>[0];
// client-node's own undici, which may be another copy than the one this package depends on.
type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * A KubeConfig whose API clients reuse their connections. client-node 2.0 builds a new undici Agent for
 * every request, so every call opened a TCP connection and did a full TLS handshake with a client
 * certificate: measured on a wave of 1,000 issuances, that was the largest share of the operator's CPU
 * and much of the API server's. Here one Agent serves every request made with the same TLS settings (CA,
 * client certificate and key as configured at that moment); when they change (a rotated client
 * certificate), the next request gets a new Agent and the old one closes once its requests finish.
 */
export class PooledKubeConfig extends k8s.KubeConfig {
  private pool?: { key: string; dispatcher: Dispatcher };

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    const key = await this.tlsKey();
    if (this.pool?.key === key) {
      context.setDispatcher(this.pool.dispatcher);
      void fresh.close();
      return;
    }
    const old = this.pool?.dispatcher;
    this.pool = { key, dispatcher: fresh };
    void old?.close();
  }

  private async tlsKey(): Promise<string> {
    const opts: https.RequestOptions = {};
    await this.applyToHTTPSOptions(opts);
    const hash = createHash('sha256');
    const cluster = this.getCurrentCluster();
    hash.update(`${cluster?.server ?? ''}\0${cluster?.proxyUrl ?? ''}\0${opts.servername ?? ''}\0`);
    hash.update(`${String(opts.rejectUnauthorized)}\0`);
    for (const part of [opts.ca, opts.cert, opts.key, opts.pfx]) {
      for (const item of [part ?? ''].flat())
        hash.update(typeof item === 'string' ? item : String(item)).update('\0');
    }
    return hash.digest('hex');
  }
}
