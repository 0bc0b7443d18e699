// The operator's hot-path writes (a Secret per issuance, a status patch, an Event) as plain JSON requests
// through the KubeConfig's authentication and (pooled) dispatcher, instead of client-node's generated API
// classes. Measured on a 1,000-identity wave, those spent more CPU than the operator's own work: each call
// runs ObjectSerializer over the request and the response (walking the generated model of every field),
// then undici's WHATWG fetch with its streams and Request/Response objects. Here a body is one
// JSON.stringify, an answer one JSON.parse, and the request one undici `dispatcher.request`.
//
// Failures are thrown as client-node's ApiException (code, body text, headers), as the generated clients
// throw them, so callers handle both alike (e.g. `err.code === 409`).
import * as k8s from '@kubernetes/client-node';
import { getGlobalDispatcher } from 'undici';

// client-node's own undici, which may be another copy than the one this package depends on.
type Dispatcher = NonNullable<ReturnType<k8s.RequestContext['getDispatcher']>>;

export type PatchType = 'merge' | 'strategic';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export class KubeJson {
  private readonly kc: k8s.KubeConfig;
  private auth?: { at: number; value: Promise<Authentication> };

  constructor(kc: k8s.KubeConfig) {
    this.kc = kc;
  }

  /** POST `body` to `path` (e.g. /api/v1/namespaces/ns/secrets): the created object. */
  create<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body, 'application/json');
  }

  /** PATCH `path` with `body`: the patched object. */
  patch<T>(path: string, body: unknown, type: PatchType): Promise<T> {
    return this.request<T>('PATCH', path, body, PATCH_CONTENT_TYPES[type]);
  }

  /** GET `path`: the object. */
  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path, undefined, undefined);
  }

  private async request<T>(
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    body: unknown,
    contentType: string | undefined,
  ): Promise<T> {
    const auth = await this.authentication();
    const headers: Record<string, string> = { ...auth.headers, accept: 'application/json' };
    if (contentType) headers['content-type'] = contentType;
    const res = await auth.dispatcher.request({
      origin: auth.origin,
      path: auth.pathPrefix + path,
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw new k8s.ApiException(
        res.statusCode,
        `${method} ${path} answered ${res.statusCode}`,
        text,
        flatHeaders(res.headers),
      );
    }
    return JSON.parse(text) as T;
  }

  /**
   * The server, headers and dispatcher the KubeConfig gives (re-read files, tokens, the pooled Agent),
   * reused for AUTH_REUSE_MS: asking for them costs as much CPU as the request itself (client-node decodes
   * and reads every certificate and key each time). A rotated token or client certificate is picked up
   * within that time; a failure is not remembered.
   */
  private authentication(): Promise<Authentication> {
    const now = performance.now();
    if (this.auth && now - this.auth.at < AUTH_REUSE_MS) return this.auth.value;
    const value = this.authenticate();
    this.auth = { at: now, value };
    value.catch(() => {
      if (this.auth?.value === value) this.auth = undefined;
    });
    return value;
  }

  private async authenticate(): Promise<Authentication> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the kubeconfig');
    const server = new URL(cluster.server);
    const ctx = new k8s.RequestContext(server.toString(), 'GET' as k8s.HttpMethod);
    await this.kc.applySecurityAuthentication(ctx);
    return {
      origin: server.origin,
      pathPrefix: server.pathname.replace(/\/+$/, ''),
      headers: ctx.getHeaders(),
      // No TLS or proxy settings (e.g. a token and the system's CAs): the process-wide dispatcher, as fetch uses.
      dispatcher: ctx.getDispatcher() ?? (getGlobalDispatcher() as unknown as Dispatcher),
    };
  }
}

interface Authentication {
  origin: string;
  pathPrefix: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
}

/** How long one answer of the KubeConfig's authentication serves requests. */
const AUTH_REUSE_MS = 1000;

function flatHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) flat[k] = [v].flat().join(', ');
  return flat;
}

const seg = encodeURIComponent;

/** API paths of the objects the operator writes. */
export const paths = {
  secrets: (namespace: string) => `/api/v1/namespaces/${seg(namespace)}/secrets`,
  secret: (namespace: string, name: string) => `/api/v1/namespaces/${seg(namespace)}/secrets/${seg(name)}`,
  events: (namespace: string) => `/api/v1/namespaces/${seg(namespace)}/events`,
  customStatus: (group: string, version: string, namespace: string, plural: string, name: string) =>
    `/apis/${seg(group)}/${seg(version)}/namespaces/${seg(namespace)}/${seg(plural)}/${seg(name)}/status`,
};
