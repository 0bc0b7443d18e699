// A kubeconfig file's current context, resolved to what a request needs: the server, the TLS material
// (inline data or a file, relative paths against the kubeconfig's directory) and a bearer token. Pure: the
// caller reads the files. What we do not implement ourselves (exec plugins, auth providers, proxies,
// basic auth) is answered with `delegate`, and the caller hands the kubeconfig to @kubernetes/client-node.
// Anything malformed is a KubeconfigError that says what is wrong and how to fix it.
import path from 'node:path';
import { load } from 'js-yaml';

/** TLS material, given inline (decoded) or as a file to read. */
export type Material = { data: Buffer } | { file: string };

export interface DirectConfig {
  /** The server URL (http or https). */
  server: string;
  ca?: Material;
  cert?: Material;
  key?: Material;
  /** tls-server-name: the name the server's certificate is checked against. */
  servername?: string;
  /** Only when the kubeconfig says insecure-skip-tls-verify: true. */
  insecureSkipTlsVerify: boolean;
  token?: string;
  /** Re-read on rotation; it wins over `token`, as in client-go. */
  tokenFile?: string;
}

export type KubeconfigResolution =
  | { kind: 'direct'; config: DirectConfig }
  /** A feature we leave to @kubernetes/client-node (why: which one). */
  | { kind: 'delegate'; why: string };

export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

/** Resolves the current context of the kubeconfig text read from `file`. */
export function resolveKubeconfig(text: string, file: string): KubeconfigResolution {
  const fail = (what: string, fix: string): never => {
    throw new KubeconfigError(`kubeconfig ${file}: ${what}; ${fix}`);
  };
  if (text.trim() === '') return fail('is empty', 'point KUBECONFIG at a kubeconfig file');
  let doc: unknown;
  try {
    doc = load(text, { filename: file });
  } catch (err) {
    fail(
      `is not valid YAML (${(err as Error).message.split('\n')[0]})`,
      'fix the file or point KUBECONFIG at a valid one',
    );
  }
  if (!isObject(doc)) return fail('is empty or not a YAML mapping', 'point KUBECONFIG at a kubeconfig file');
  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') {
    return fail('has no current-context', 'choose one with `kubectl config use-context NAME`');
  }
  const context = named(doc, 'contexts', 'context', contextName, fail);
  const clusterName = context.cluster;
  if (typeof clusterName !== 'string' || clusterName === '') {
    return fail(
      `context "${contextName}" names no cluster`,
      'set its cluster with `kubectl config set-context`',
    );
  }
  const cluster = named(doc, 'clusters', 'cluster', clusterName, fail);
  const userName = context.user;
  const user =
    userName === undefined || userName === null || userName === ''
      ? {}
      : typeof userName === 'string'
        ? named(doc, 'users', 'user', userName, fail)
        : fail(
            `context "${contextName}" has a user that is not a name`,
            'set it to the name of an entry in users',
          );

  if (cluster['proxy-url'] !== undefined) return { kind: 'delegate', why: 'proxy-url' };
  if (user.exec !== undefined) return { kind: 'delegate', why: 'exec' };
  if (user['auth-provider'] !== undefined) return { kind: 'delegate', why: 'auth-provider' };
  if (user.username !== undefined || user.password !== undefined)
    return { kind: 'delegate', why: 'basic auth' };
  if (user.as !== undefined || user['as-groups'] !== undefined)
    return { kind: 'delegate', why: 'impersonation' };

  const server = cluster.server;
  if (typeof server !== 'string' || server === '') {
    return fail(
      `cluster "${clusterName}" has no server`,
      'set it with `kubectl config set-cluster NAME --server=https://HOST:PORT`',
    );
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return fail(
      `cluster "${clusterName}" has server "${server}", which is not a URL`,
      'write it as https://HOST:PORT',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return fail(
      `cluster "${clusterName}" has server "${server}" with scheme ${url.protocol}`,
      'use https:// (or http://)',
    );
  }
  const dir = path.dirname(path.resolve(file));
  const where = (kind: string, name: string) => `${kind} "${name}"`;
  const ca = material(cluster, 'certificate-authority', where('cluster', clusterName), dir, fail);
  const cert = material(user, 'client-certificate', where('user', String(userName)), dir, fail);
  const key = material(user, 'client-key', where('user', String(userName)), dir, fail);
  if (Boolean(cert) !== Boolean(key)) {
    return fail(
      `user "${String(userName)}" has a client ${cert ? 'certificate without a key' : 'key without a certificate'}`,
      'give both client-certificate(-data) and client-key(-data), or neither',
    );
  }
  const insecure = cluster['insecure-skip-tls-verify'];
  if (insecure !== undefined && typeof insecure !== 'boolean') {
    return fail(
      `cluster "${clusterName}" has insecure-skip-tls-verify "${String(insecure)}"`,
      'write true or false',
    );
  }
  if (insecure === true && ca) {
    return fail(
      `cluster "${clusterName}" gives a certificate authority and insecure-skip-tls-verify: true`,
      'remove insecure-skip-tls-verify (the certificate authority is the safe choice)',
    );
  }
  const servername = optionalString(cluster, 'tls-server-name', where('cluster', clusterName), fail);
  const token = optionalString(user, 'token', where('user', String(userName)), fail);
  const tokenFile = optionalString(user, 'tokenFile', where('user', String(userName)), fail);
  return {
    kind: 'direct',
    config: {
      server: server.replace(/\/+$/, ''),
      ...(ca && { ca }),
      ...(cert && { cert }),
      ...(key && { key }),
      ...(servername && { servername }),
      insecureSkipTlsVerify: insecure === true,
      ...(token && { token }),
      ...(tokenFile && { tokenFile: path.resolve(dir, tokenFile) }),
    },
  };
}

type Fail = (what: string, fix: string) => never;
type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The `field` of the entry called `name` in the list `list` (contexts, clusters, users). */
function named(doc: Obj, list: string, field: string, name: string, fail: Fail): Obj {
  const entries = doc[list];
  if (entries !== undefined && entries !== null && !Array.isArray(entries)) {
    return fail(`${list} is not a list`, `write ${list} as a list of {name, ${field}} entries`);
  }
  const found = (entries ?? []).find((e: unknown) => isObject(e) && e.name === name) as Obj | undefined;
  if (!found) {
    const known = (entries ?? []).filter(isObject).map((e: Obj) => String(e.name));
    return fail(
      `no ${field} named "${name}" in ${list} (there ${known.length === 1 ? 'is' : 'are'}: ${known.join(', ') || 'none'})`,
      field === 'context'
        ? 'choose one with `kubectl config use-context NAME`'
        : `add it, or point the context at one of those`,
    );
  }
  const value = found[field];
  if (!isObject(value))
    return fail(`${field} "${name}" has no ${field} mapping`, `give it a ${field}: section`);
  return value;
}

function optionalString(o: Obj, key: string, where: string, fail: Fail): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') return fail(`${where} has a ${key} that is not a string`, `quote its value`);
  return v;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** `key` (a file path) or `key-data` (base64), not both. */
function material(o: Obj, key: string, where: string, dir: string, fail: Fail): Material | undefined {
  const file = optionalString(o, key, where, fail);
  const data = optionalString(o, `${key}-data`, where, fail);
  if (file && data) {
    return fail(`${where} gives both ${key} and ${key}-data`, `keep one of them`);
  }
  if (data) {
    const compact = data.replace(/\s+/g, '');
    if (!BASE64.test(compact))
      return fail(`${where} has ${key}-data that is not base64`, `encode the PEM with \`base64 -w0\``);
    return { data: Buffer.from(compact, 'base64') };
  }
  return file ? { file: path.resolve(dir, file) } : undefined;
}
