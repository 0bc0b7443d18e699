// A TLS-terminating reverse proxy on 127.0.0.1 in front of the harness's API server, for chaos tests:
// clients use the kubeconfig it writes, it forwards to the API server as the admin user, and a rule set
// decides which requests get a Kubernetes error, a closed connection, a delay or a cut stream instead.
import { KubeClient } from '../../src/kube/client.ts';
import { directTransport } from '../../src/kube/direct-transport.ts';
import { resolveKubeconfig } from '../../src/kube/kubeconfig.ts';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';

const run = promisify(execFile);

export type Fault =
  /** Answer with this HTTP status and a Kubernetes `Status` body, without reaching the API server. */
  | { kind: 'status'; code: number; retryAfterSeconds?: number; message?: string }
  /**
   * Close the client's connection without an answer: before forwarding (the request never happened)
   * or, with `afterUpstream`, once the API server has answered (it took effect, the client never hears).
   */
  | { kind: 'drop'; afterUpstream?: boolean }
  /** Forward, and close the connection this long after the response started: cuts watches mid-stream. */
  | { kind: 'cut'; afterMs: number }
  /** Forward after a pause, e.g. to push a request past a client's deadline. */
  | { kind: 'delay'; ms: number }
  /**
   * Forward at once, and hold the API server's answer this long before relaying it: the request has taken
   * effect (watchers see it) while its client still waits for the response.
   */
  | { kind: 'hold'; ms: number };

export interface FaultRule {
  /** Key for stats() and removeRule(). */
  name: string;
  /** HTTP method, case-insensitive; any method when omitted. */
  method?: string;
  /** Tested against the request's path and query string (`/api/v1/...?watch=true`); any when omitted. */
  path?: RegExp;
  fault: Fault;
  /** Chance that a matching request gets the fault; 1 when omitted. */
  probability?: number;
  /** The fault is injected into at most this many requests, then the rule lets everything pass. */
  times?: number;
}

export interface RuleStats {
  name: string;
  /** Requests that matched method and path while the rule was installed. */
  matched: number;
  /** Faults actually applied (a cut counts only if the response was still streaming). */
  injected: number;
}

export interface ProxyStats {
  requests: number;
  forwarded: number;
  injected: number;
  rules: RuleStats[];
}

export interface FaultProxyOptions {
  /** https URL of the API server. */
  upstream: string;
  /** Directory holding the API server's ca.crt and the admin.crt / admin.key the proxy presents. */
  pkiDir: string;
  rules?: FaultRule[];
  /** Source of randomness for `probability`; Math.random when omitted. Inject one to make runs repeatable. */
  random?: () => number;
}

interface InstalledRule {
  rule: FaultRule;
  stats: RuleStats;
  budget: number;
}

interface Stream {
  method: string;
  path: string;
  cut: () => void;
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

// Headers that describe one hop's connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/** What the API server's Status would name: group, resource and object name from a REST path. */
export function describeTarget(urlPath: string): { group: string; resource: string; name?: string } {
  const parts = (urlPath.split('?')[0] ?? '').split('/').filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  const rest = parts[0] === 'apis' ? parts.slice(3) : parts.slice(2);
  const group = parts[0] === 'apis' ? (parts[1] ?? '') : '';
  const scoped = rest[0] === 'namespaces' && rest.length >= 3 ? rest.slice(2) : rest;
  return { group, resource: scoped[0] ?? '', name: scoped[1] };
}

/** The body kube-apiserver would send with `code`, so clients parse it exactly as a real failure. */
export function statusBody(
  code: number,
  urlPath: string,
  opts: { retryAfterSeconds?: number; message?: string } = {},
): k8s.V1Status {
  const target = describeTarget(urlPath);
  const qualified = target.group ? `${target.resource}.${target.group}` : target.resource;
  const defaults: Record<number, string> = {
    409: `Operation cannot be fulfilled on ${qualified} "${target.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`,
    429: 'Too many requests, please try again later.',
    500: 'Internal error occurred: injected by the fault proxy',
    503: 'The server is currently unable to handle the request',
  };
  const details: k8s.V1StatusDetails = { group: target.group, kind: target.resource };
  if (target.name) details.name = target.name;
  if (opts.retryAfterSeconds !== undefined) details.retryAfterSeconds = opts.retryAfterSeconds;
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: opts.message ?? defaults[code] ?? `injected by the fault proxy (${code})`,
    reason: REASONS[code] ?? 'Unknown',
    details,
    code,
  };
}

async function makeServingCert(dir: string): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const f = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir });
  const ecKey = (out: string) =>
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out]);
  await ecKey(f('ca.key'));
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-subj',
    '/CN=svid-operator-fault-proxy-ca',
    '-days',
    '2',
    '-out',
    f('ca.crt'),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  ]);
  await ecKey(f('proxy.key'));
  await openssl(['req', '-new', '-key', f('proxy.key'), '-subj', '/CN=fault-proxy', '-out', f('proxy.csr')]);
  await writeFile(f('proxy.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await openssl([
    'x509',
    '-req',
    '-in',
    f('proxy.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('proxy.ext'),
    '-out',
    f('proxy.crt'),
  ]);
  const [ca, cert, key] = await Promise.all([
    readFile(f('ca.crt')),
    readFile(f('proxy.crt')),
    readFile(f('proxy.key')),
  ]);
  return { ca, cert, key };
}

export class FaultProxy {
  private readonly server: https.Server;
  private readonly agent: https.Agent;
  private readonly upstream: URL;
  private readonly dir: string;
  private readonly ca: Buffer;
  private readonly admin: { cert: Buffer; key: Buffer };
  private readonly random: () => number;
  private rules: InstalledRule[] = [];
  /** Per rule name, kept when a rule is removed so a test can still report what it injected. */
  private readonly ruleStats = new Map<string, RuleStats>();
  private readonly streams = new Set<Stream>();
  private requests = 0;
  private holding = 0;
  private forwarded = 0;
  private injectedTotal = 0;

  private constructor(
    opts: FaultProxyOptions,
    dir: string,
    tls: { ca: Buffer; cert: Buffer; key: Buffer },
    upstreamCreds: { ca: Buffer; cert: Buffer; key: Buffer },
  ) {
    this.upstream = new URL(opts.upstream);
    this.dir = dir;
    this.ca = tls.ca;
    this.admin = { cert: upstreamCreds.cert, key: upstreamCreds.key };
    this.random = opts.random ?? Math.random;
    for (const rule of opts.rules ?? []) this.addRule(rule);
    this.agent = new https.Agent({ ...upstreamCreds, keepAlive: true });
    this.server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => this.handle(req, res));
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'svid-fault-proxy-'));
    try {
      const tls = await makeServingCert(dir);
      const [ca, cert, key] = (await Promise.all(
        ['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(path.join(opts.pkiDir, f))),
      )) as [Buffer, Buffer, Buffer];
      const proxy = new FaultProxy(opts, dir, tls, { ca, cert, key });
      proxy.server.listen(0, '127.0.0.1');
      await once(proxy.server, 'listening');
      return proxy;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** In front of the harness's control plane, as its admin user. */
  static forControlPlane(
    cp: { apiServerUrl: string; dir: string },
    opts: Omit<FaultProxyOptions, 'upstream' | 'pkiDir'> = {},
  ): Promise<FaultProxy> {
    return FaultProxy.start({ ...opts, upstream: cp.apiServerUrl, pkiDir: path.join(cp.dir, 'pki') });
  }

  get url(): string {
    const { port } = this.server.address() as net.AddressInfo;
    return `https://127.0.0.1:${port}`;
  }

  /**
   * Rules are tried in the order they were added; the first that decides to inject wins. A rule added
   * again under the name of a removed one continues its counts.
   */
  addRule(rule: FaultRule): void {
    if (this.rules.some((r) => r.rule.name === rule.name))
      throw new Error(`rule "${rule.name}" exists already`);
    const p = rule.probability ?? 1;
    if (!(p >= 0 && p <= 1)) throw new RangeError(`rule "${rule.name}": probability must be within [0, 1]`);
    let stats = this.ruleStats.get(rule.name);
    if (!stats) {
      stats = { name: rule.name, matched: 0, injected: 0 };
      this.ruleStats.set(rule.name, stats);
    }
    this.rules.push({ rule, stats, budget: rule.times ?? Infinity });
  }

  removeRule(name: string): void {
    this.rules = this.rules.filter((r) => r.rule.name !== name);
  }

  clearRules(): void {
    this.rules = [];
  }

  stats(): ProxyStats {
    return {
      requests: this.requests,
      forwarded: this.forwarded,
      injected: this.injectedTotal,
      rules: [...this.ruleStats.values()].map((r) => ({ ...r })),
    };
  }

  /** Answers the API server has given that a 'hold' fault is still keeping from their clients. */
  heldResponses(): number {
    return this.holding;
  }

  /** Responses still streaming through the proxy: watches, mostly. */
  openStreams(): { method: string; path: string }[] {
    return [...this.streams].map(({ method, path }) => ({ method, path }));
  }

  /** Closes streaming responses (those matching `path`, or all) as a dying API server or LB would. */
  cutStreams(pathPattern?: RegExp): number {
    let cut = 0;
    for (const stream of [...this.streams]) {
      if (pathPattern && !pathPattern.test(stream.path)) continue;
      stream.cut();
      cut++;
    }
    return cut;
  }

  kubeconfigYaml(): string {
    return toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'fault-proxy',
          cluster: { server: this.url, 'certificate-authority-data': this.ca.toString('base64') },
        },
      ],
      // The proxy authenticates to the API server itself and never asks for a client certificate, so
      // these are not sent; they are here because kubectl prompts on stdin for a user without any.
      users: [
        {
          name: 'fault-proxy',
          user: {
            'client-certificate-data': this.admin.cert.toString('base64'),
            'client-key-data': this.admin.key.toString('base64'),
          },
        },
      ],
      contexts: [
        {
          name: 'fault-proxy',
          context: { cluster: 'fault-proxy', user: 'fault-proxy', namespace: 'default' },
        },
      ],
      'current-context': 'fault-proxy',
    });
  }

  async writeKubeconfig(file: string): Promise<void> {
    await writeFile(file, this.kubeconfigYaml(), { mode: 0o600 });
  }

  /** The operator's own client (src/kube) for kubeconfigYaml(). */
  async kubeClient(): Promise<KubeClient> {
    const resolved = resolveKubeconfig(this.kubeconfigYaml(), 'fault-proxy.kubeconfig');
    if (resolved.kind !== 'direct') throw new Error(`the fault proxy's kubeconfig needs ${resolved.why}`);
    return new KubeClient(await directTransport(resolved.config));
  }

  kubeConfig(): k8s.KubeConfig {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(this.kubeconfigYaml());
    return kc;
  }

  async close(): Promise<void> {
    this.cutStreams();
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
    this.agent.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }

  private pick(method: string, url: string): InstalledRule | undefined {
    for (const installed of this.rules) {
      const { rule } = installed;
      if (rule.method && rule.method.toUpperCase() !== method) continue;
      if (rule.path && !rule.path.test(url)) continue;
      installed.stats.matched++;
      if (installed.budget <= 0) continue;
      if (this.random() >= (rule.probability ?? 1)) continue;
      installed.budget--;
      return installed;
    }
    return undefined;
  }

  private count(installed: InstalledRule): void {
    installed.stats.injected++;
    this.injectedTotal++;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests++;
    const method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const installed = this.pick(method, url);
    const fault = installed?.rule.fault;
    if (!installed || !fault) return this.forward(req, res, method, url);
    switch (fault.kind) {
      case 'status': {
        this.count(installed);
        const body = JSON.stringify(statusBody(fault.code, url, fault));
        const headers: http.OutgoingHttpHeaders = {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'cache-control': 'no-cache, private',
        };
        if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
        // Read the request body first so the keep-alive connection stays usable for the next request.
        req.resume();
        req.on('end', () => res.writeHead(fault.code, headers).end(body));
        return;
      }
      case 'drop':
        if (!fault.afterUpstream) {
          this.count(installed);
          req.socket.destroy();
          return;
        }
        return this.forward(req, res, method, url, () => {
          this.count(installed);
          req.socket.destroy();
          return false;
        });
      case 'cut':
        return this.forward(req, res, method, url, () => {
          const timer = setTimeout(() => {
            if (res.writableFinished) return;
            this.count(installed);
            req.socket.destroy();
          }, fault.afterMs);
          res.on('close', () => clearTimeout(timer));
          return true;
        });
      case 'delay': {
        this.count(installed);
        const timer = setTimeout(() => this.forward(req, res, method, url), fault.ms);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case 'hold':
        this.count(installed);
        return this.forward(req, res, method, url, undefined, fault.ms);
    }
  }

  /**
   * Sends the request to the API server and streams the answer back as it arrives. `onResponse` runs
   * when the API server's response starts; returning false discards it.
   */
  private forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    url: string,
    onResponse?: () => boolean,
    holdMs = 0,
  ): void {
    if (req.socket.destroyed) return;
    this.forwarded++;
    const upstreamReq = https.request({
      protocol: this.upstream.protocol,
      hostname: this.upstream.hostname,
      port: this.upstream.port,
      method,
      path: url,
      headers: { ...endToEnd(req.headers), host: this.upstream.host },
      agent: this.agent,
    });
    const stream: Stream = { method, path: url, cut: () => req.socket.destroy() };
    upstreamReq.on('response', (upstreamRes) => {
      if (onResponse && !onResponse()) {
        upstreamRes.resume();
        return;
      }
      const relay = () => {
        res.writeHead(upstreamRes.statusCode ?? 502, endToEnd(upstreamRes.headers));
        // Watches send their first event only when something changes; the client should see the
        // headers (and its connection established) at once.
        res.flushHeaders();
        this.streams.add(stream);
        upstreamRes.pipe(res);
        upstreamRes.on('error', () => req.socket.destroy());
      };
      if (holdMs <= 0) return relay();
      upstreamRes.pause();
      this.holding++;
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        this.holding--;
        clearTimeout(timer);
      };
      const timer = setTimeout(() => {
        release();
        relay();
      }, holdMs);
      res.on('close', release);
    });
    // The API server unreachable looks to the client like it would without the proxy: no answer.
    upstreamReq.on('error', () => req.socket.destroy());
    res.on('close', () => {
      this.streams.delete(stream);
      if (!res.writableFinished) upstreamReq.destroy();
    });
    req.pipe(upstreamReq);
  }
}
