// Requests as a DirectConfig says: pooled undici Agents (one for requests, bounded by `connections`, one
// for watches), and the bearer token (re-read from its file
// on rotation) as a header. TLS material given as files is read again every `rereadMs`; when it changed
// (a rotated client certificate) and the new certificate and key belong together, later requests get a
// new Agent and the old one closes once its requests (and watches) end.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import { Agent } from './undici-agent.ts';
import type { Connection, ConnectionUse, KubeTransport } from './connection.ts';
import type { DirectConfig, Material } from './kubeconfig.ts';
import { TokenFile } from './token-file.ts';

export interface DirectTransportOptions {
  /** Milliseconds on a monotonic clock. Default performance.now. */
  clock?: () => number;
  /** How often TLS files are read again. Default 60 s. */
  rereadMs?: number;
  /**
   * At most this many connections carry requests at once; more requests wait for a free one. Watches use a
   * pool of their own without a bound (one connection per watch, held for minutes). Default: no bound.
   */
  connections?: number;
}

/** How long an idle pooled connection is kept when the server does not say (see agentFor). */
export const IDLE_KEEP_ALIVE_MS = 30_000;

interface Tls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  digest: string;
}

export async function directTransport(
  config: DirectConfig,
  o: DirectTransportOptions = {},
): Promise<KubeTransport> {
  const clock = o.clock ?? (() => performance.now());
  const rereadMs = o.rereadMs ?? 60_000;
  const url = new URL(config.server);
  // One TLS context per set of material, shared by every connection of the pool: given ca/cert/key instead,
  // tls.connect builds a context of its own for each new connection (parsing the CA, certificate and key
  // again), which at the 1,000-identity wave, where the pool opens ~100 connections at once for the writes in
  // flight, was ~2 % of the operator's sampled time (hack/profile-wave.ts --cpu-prof: SecureContext,
  // configSecureContext).
  //
  // Idle pooled connections are kept 30 s (undici's default is 4 s) when the server does not say how long
  // it keeps them: kube-apiserver (Go net/http) sends no Keep-Alive header and keeps idle connections far
  // longer. On a loaded machine the wave's bursts of writes come more than 4 s apart, and with 4 s the pool
  // closed its connections between bursts and opened them again, a TLS handshake each (165 tls.connect in a
  // 1,000-identity wave at load 8-10, 111 of them after its first 10 s; 99 and 5 with 30 s). A server that
  // does send `Keep-Alive: timeout=N` (Node's http server, e.g. the chaos tests' fault proxy: timeout=5) is
  // still believed: undici then keeps the connection N s less keepAliveTimeoutThreshold (2 s), so it never
  // reuses one the server is about to close.
  //
  // Requests and watches get a pool each (see DirectTransportOptions.connections): in one bounded pool,
  // enough open watches would leave no connection for any request.
  const agentFor = (tls: Tls, connections?: number): Dispatcher =>
    new Agent({
      keepAliveTimeout: IDLE_KEEP_ALIVE_MS,
      ...(connections !== undefined && { connections }),
      connect: {
        secureContext: createSecureContext({
          ...(tls.ca && { ca: tls.ca }),
          ...(tls.cert && { cert: tls.cert }),
          ...(tls.key && { key: tls.key }),
        }),
        ...(config.servername && { servername: config.servername }),
        rejectUnauthorized: !config.insecureSkipTlsVerify,
      },
    });
  if (o.connections !== undefined && !(Number.isSafeInteger(o.connections) && o.connections >= 1))
    throw new RangeError(`connections must be a whole number >= 1, not ${o.connections}`);
  const poolsFor = (tls: Tls) => ({
    digest: tls.digest,
    request: agentFor(tls, o.connections),
    watch: agentFor(tls),
  });
  const closePools = (p: { request: Dispatcher; watch: Dispatcher }) =>
    Promise.all([p.request.close(), p.watch.close()]).then(() => undefined);
  const first = await readTls(config);
  let pool = poolsFor(first);
  const fromFiles = [config.ca, config.cert, config.key].some((m) => m && 'file' in m);
  let checkedAt = clock();
  let checking: Promise<void> | undefined;
  const dispatcher = async (use: ConnectionUse): Promise<Dispatcher> => {
    if (fromFiles && clock() - checkedAt >= rereadMs) {
      checking ??= (async () => {
        try {
          const next = await readTls(config);
          if (next.digest !== pool.digest) {
            const old = pool;
            pool = poolsFor(next);
            void closePools(old);
          }
        } catch {
          // Missing, unreadable or a certificate that does not match its key (a rotation writes its files
          // one at a time): keep what works, and look again after rereadMs.
        }
        checkedAt = clock();
      })().finally(() => (checking = undefined));
      await checking;
    }
    return pool[use];
  };
  const tokenFile = config.tokenFile ? new TokenFile(config.tokenFile, { clock }) : undefined;
  const base = { origin: url.origin, pathPrefix: url.pathname.replace(/\/+$/, '') };
  const fixedHeaders: Record<string, string> = config.token
    ? { authorization: `Bearer ${config.token}` }
    : {};
  const auth = [first.cert && 'client certificate', (tokenFile ?? config.token) && 'bearer token']
    .filter(Boolean)
    .join(' and ');
  return {
    async connection(use: ConnectionUse = 'request'): Promise<Connection> {
      const headers = tokenFile ? { authorization: `Bearer ${await tokenFile.token()}` } : fixedHeaders;
      return { ...base, headers, dispatcher: await dispatcher(use) };
    },
    close: () => closePools(pool),
    description: `${url.origin} (${auth || 'anonymous'}${config.insecureSkipTlsVerify ? ', TLS NOT verified' : ''})`,
  };
}

/** The CA, client certificate and key; throws when a file is unreadable or the certificate and key differ. */
async function readTls(config: DirectConfig): Promise<Tls> {
  const [ca, cert, key] = await Promise.all([
    readMaterial(config.ca, 'certificate authority'),
    readMaterial(config.cert, 'client certificate'),
    readMaterial(config.key, 'client key'),
  ]);
  if (cert && key) {
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      throw new Error(
        `the client certificate and key in the kubeconfig do not belong together or cannot be read (${(err as Error).message}): give the key of that certificate`,
        { cause: err },
      );
    }
  }
  const hash = createHash('sha256');
  for (const part of [ca, cert, key]) hash.update(part ?? '').update('\0');
  return { ca, cert, key, digest: hash.digest('hex') };
}

async function readMaterial(m: Material | undefined, what: string): Promise<Buffer | undefined> {
  if (!m) return undefined;
  if ('data' in m) return m.data;
  try {
    return await readFile(m.file);
  } catch (err) {
    throw new Error(
      `cannot read the ${what} file ${m.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): fix the path in the kubeconfig`,
      { cause: err },
    );
  }
}
