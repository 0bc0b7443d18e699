// A small Kubernetes API client: JSON in and out over the transport's (pooled) undici dispatcher, no
// generated models or ObjectSerializer (one JSON.stringify per body, one JSON.parse per answer). Failures
// are KubeApiErrors carrying the HTTP status and the API's Status reason and message.
import type { Dispatcher } from 'undici';
import type { KubeTransport } from './connection.ts';
import { KubeApiError } from './errors.ts';
import { streamWatch, type WatchEnd, type WatchRequest } from './watch-stream.ts';

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

export const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  /** Query parameters (undefined ones are left out). */
  query?: Query;
  /** Aborts the request. */
  signal?: AbortSignal;
}

export interface PatchOptions extends RequestOptions {
  /** Required for apply patches. */
  fieldManager?: string;
  /** Apply: take over fields other managers own. */
  force?: boolean;
}

export interface ListResult<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

/** Bounds listAll: a list of more pages than this is an error, not an endless loop. */
export const MAX_LIST_PAGES = 10_000;

export class KubeClient {
  readonly transport: KubeTransport;

  constructor(transport: KubeTransport) {
    this.transport = transport;
  }

  get<T>(path: string, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', path, undefined, undefined, o);
  }

  /** One page of a list (pass `limit` and `continue` in the query to page). */
  list<T>(path: string, o: RequestOptions = {}): Promise<ListResult<T>> {
    return this.request<ListResult<T>>('GET', path, undefined, undefined, o);
  }

  /** Every item of a list, fetched `limit` at a time with continue tokens. */
  async listAll<T>(
    path: string,
    o: RequestOptions = {},
    limit = 500,
    maxPages = MAX_LIST_PAGES,
  ): Promise<ListResult<T>> {
    const items: T[] = [];
    let token: string | undefined;
    for (let page = 0; page < maxPages; page++) {
      const res = await this.list<T>(path, { ...o, query: { ...o.query, limit, continue: token } });
      items.push(...res.items);
      token = res.metadata.continue;
      if (!token) return { items, metadata: { resourceVersion: res.metadata.resourceVersion } };
    }
    throw new Error(`GET ${path}: more than ${maxPages} pages of ${limit}; list with a selector`);
  }

  create<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, body, 'application/json', o);
  }

  replace<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.request<T>('PUT', path, body, 'application/json', o);
  }

  patch<T>(path: string, body: unknown, type: PatchType, o: PatchOptions = {}): Promise<T> {
    if (type === 'apply' && !o.fieldManager) {
      throw new Error(`PATCH ${path}: an apply patch needs a fieldManager`);
    }
    const query = { ...o.query, fieldManager: o.fieldManager, force: o.force };
    return this.request<T>('PATCH', path, body, PATCH_CONTENT_TYPES[type], { ...o, query });
  }

  /** DELETE: the deleted object or a Status, as the API server answers. */
  delete<T>(path: string, o: RequestOptions & { body?: unknown } = {}): Promise<T> {
    return this.request<T>('DELETE', path, o.body, o.body === undefined ? undefined : 'application/json', o);
  }

  /** One watch request (see watch-stream.ts). */
  async watch(req: WatchRequest): Promise<WatchEnd> {
    let conn;
    try {
      conn = await this.transport.connection('watch');
    } catch (err) {
      return { kind: 'error', error: err instanceof Error ? err : new Error(String(err)), aborted: false };
    }
    return streamWatch(conn, req);
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  private async request<T>(
    method: Dispatcher.HttpMethod,
    path: string,
    body: unknown,
    contentType: string | undefined,
    o: RequestOptions,
  ): Promise<T> {
    const conn = await this.transport.connection();
    const headers: Record<string, string> = { ...conn.headers, accept: 'application/json' };
    if (contentType) headers['content-type'] = contentType;
    const res = await conn.dispatcher.request({
      origin: conn.origin,
      path: conn.pathPrefix + path + queryString(o.query),
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: o.signal,
    });
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode > 299)
      throw new KubeApiError(method, path, res.statusCode, text);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(
        `${method} ${path}: the API server answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`,
      );
    }
  }
}

export function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

const seg = encodeURIComponent;

/** API paths of the objects the operator reads and writes. */
export const paths = {
  secrets: (namespace: string) => `/api/v1/namespaces/${seg(namespace)}/secrets`,
  secret: (namespace: string, name: string) => `/api/v1/namespaces/${seg(namespace)}/secrets/${seg(name)}`,
  allSecrets: () => '/api/v1/secrets',
  configMaps: (namespace: string) => `/api/v1/namespaces/${seg(namespace)}/configmaps`,
  configMap: (namespace: string, name: string) =>
    `/api/v1/namespaces/${seg(namespace)}/configmaps/${seg(name)}`,
  namespaces: () => '/api/v1/namespaces',
  events: (namespace: string) => `/api/v1/namespaces/${seg(namespace)}/events`,
  leases: (namespace: string) => `/apis/coordination.k8s.io/v1/namespaces/${seg(namespace)}/leases`,
  lease: (namespace: string, name: string) =>
    `/apis/coordination.k8s.io/v1/namespaces/${seg(namespace)}/leases/${seg(name)}`,
  /** A custom resource collection: cluster-wide when namespace is ''. */
  custom: (group: string, version: string, namespace: string, plural: string) =>
    namespace
      ? `/apis/${seg(group)}/${seg(version)}/namespaces/${seg(namespace)}/${seg(plural)}`
      : `/apis/${seg(group)}/${seg(version)}/${seg(plural)}`,
  customObject: (group: string, version: string, namespace: string, plural: string, name: string) =>
    `${paths.custom(group, version, namespace, plural)}/${seg(name)}`,
  customStatus: (group: string, version: string, namespace: string, plural: string, name: string) =>
    `${paths.custom(group, version, namespace, plural)}/${seg(name)}/status`,
};
