// A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) running as child
// processes on 127.0.0.1. Used by the integration tests, `npm run cluster:up` and the demo.
//
// Why each flag is set is written next to it; controller-runtime's envtest runs the API server the same
// way and was the reference.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { ensureBinaries, ensureNodeBinaries, type Binaries } from './binaries.ts';

const run = promisify(execFile);

export interface ControlPlaneOptions {
  /** Directory for data, certificates, kubeconfig and logs. A fresh temporary one when omitted. */
  dir?: string;
  /** Start kube-controller-manager (garbage collection, namespace deletion, service-account tokens). */
  controllerManager?: boolean;
  /** Extra kube-apiserver flags, e.g. for tests that need a feature gate. */
  apiServerFlags?: string[];
  /** Where child-process output goes: files in `dir` (default) or inherited stdio. */
  logToFiles?: boolean;
  /**
   * Pod certificates (KEP-4317): the PodCertificateRequest and ClusterTrustBundle APIs
   * (certificates.k8s.io/v1beta1), and the Node authorizer with NodeRestriction admission so that a node's
   * client certificate may create requests only for pods bound to that node (see nodeClientCertificate).
   */
  podCertificates?: boolean;
  /**
   * Serve a real node (hack/lib/node-cluster.ts) instead of API clients on loopback only: listen on
   * `address` (the host end of the node's own network namespace, never 0.0.0.0) and advertise it as the
   * `kubernetes` Service's endpoint, authorize kubelets (Node authorizer, NodeRestriction), reach them
   * with a client certificate, and run kube-scheduler so pods get a node.
   */
  node?: NodeServing;
  /** Where ports come from (default freePort); a test hands out a taken one to check the start survives it. */
  pickPort?: () => Promise<number>;
}

export interface NodeServing {
  /** The API server's listen and advertise address, reachable from the node and its pods. */
  address: string;
  /** --service-cluster-ip-range; its first address is the `kubernetes` Service's ClusterIP. */
  serviceCidr: string;
  firstServiceIp: string;
}

/** kube-apiserver flags for `podCertificates`. */
export const POD_CERTIFICATE_FLAGS = [
  '--feature-gates=PodCertificateRequest=true,ClusterTrustBundle=true,ClusterTrustBundleProjection=true',
  '--runtime-config=certificates.k8s.io/v1beta1=true',
  '--enable-admission-plugins=NodeRestriction',
];

export interface ControlPlaneInfo {
  dir: string;
  kubeconfigPath: string;
  apiServerUrl: string;
  etcdUrl: string;
  pids: { etcd: number; apiServer: number; controllerManager?: number; scheduler?: number };
}

interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
}

/** Ports chosen by the kernel: bind :0 on loopback, read the port, release it. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

const ecKey = (pki: string, out: string) =>
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out], pki);

/**
 * A key `<name>.key` and a certificate `<name>.crt` signed by the CA in `pki` (ca.crt, ca.key), with
 * the subject `subj` and the openssl extension lines `ext`. Returns the two paths.
 */
export async function issueLeaf(
  pki: string,
  name: string,
  subj: string,
  ext: string,
): Promise<{ cert: string; key: string }> {
  const f = (n: string) => path.join(pki, n);
  await ecKey(pki, f(`${name}.key`));
  await openssl(['req', '-new', '-key', f(`${name}.key`), '-subj', subj, '-out', f(`${name}.csr`)], pki);
  await writeFile(f(`${name}.ext`), ext);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.crt`),
    ],
    pki,
  );
  return { cert: f(`${name}.crt`), key: f(`${name}.key`) };
}

// Certificates for the API server's serving endpoint and an admin client. openssl keeps this harness
// independent of the project's own PKI code, which is what the tests exercise.
async function makePki(dir: string, node: NodeServing | undefined): Promise<Pki> {
  const pki = path.join(dir, 'pki');
  await mkdir(pki, { recursive: true });
  const f = (name: string) => path.join(pki, name);
  await ecKey(pki, f('ca.key'));
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      f('ca.key'),
      '-subj',
      '/CN=svid-operator-local-ca',
      '-days',
      '30',
      '-out',
      f('ca.crt'),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    pki,
  );
  const leaf = (name: string, subj: string, ext: string) => issueLeaf(pki, name, subj, ext);
  // The first Service IP is what in-cluster clients dial; localhost/127.0.0.1 (or the node-facing
  // address with a node) is what we dial.
  const sans = [
    'IP:127.0.0.1',
    'DNS:localhost',
    `IP:${node?.firstServiceIp ?? '10.96.0.1'}`,
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
    ...(node ? [`IP:${node.address}`] : []),
  ];
  await leaf(
    'apiserver',
    '/CN=kube-apiserver',
    `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\n`,
  );
  // The API server's identity towards kubelets (logs, exec): the kubelet's webhook authorizer asks
  // the API server, where system:masters may do everything.
  await leaf(
    'apiserver-kubelet-client',
    '/O=system:masters/CN=kube-apiserver-kubelet-client',
    'extendedKeyUsage=clientAuth\n',
  );
  // system:masters is bound to cluster-admin by the API server's bootstrap policy.
  await leaf('admin', '/O=system:masters/CN=admin', 'extendedKeyUsage=clientAuth\n');
  await openssl(
    ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f('sa.key')],
    pki,
  );
  await openssl(['pkey', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')], pki);
  return {
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    servingCert: f('apiserver.crt'),
    servingKey: f('apiserver.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    serviceAccountKey: f('sa.key'),
    serviceAccountPub: f('sa.pub'),
    kubeletClientCert: f('apiserver-kubelet-client.crt'),
    kubeletClientKey: f('apiserver-kubelet-client.key'),
  };
}

async function writeKubeconfig(file: string, server: string, pki: Pki): Promise<void> {
  await writeClientKubeconfig(file, server, pki.caCert, pki.adminCert, pki.adminKey, 'admin');
}

/** A kubeconfig for `server` authenticating with a client certificate (all files are PEM paths). */
export async function writeClientKubeconfig(
  file: string,
  server: string,
  caFile: string,
  certFile: string,
  keyFile: string,
  user: string,
): Promise<void> {
  const [ca, cert, key] = await Promise.all([readFile(caFile), readFile(certFile), readFile(keyFile)]);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
    users: [
      {
        name: user,
        user: {
          'client-certificate-data': cert.toString('base64'),
          'client-key-data': key.toString('base64'),
        },
      },
    ],
    contexts: [{ name: 'local', context: { cluster: 'local', user, namespace: 'default' } }],
    'current-context': 'local',
  };
  await writeFile(file, toYaml(config), { mode: 0o600 });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What a failed start says: its exit code and the end of its output, quoted since its directory goes away. */
export class StartFailure extends Error {
  readonly exitCode: number;
  readonly outputTail: string;

  constructor(what: string, exitCode: number, outputTail: string) {
    super(`${what} exited with code ${exitCode} before becoming ready; its last output:\n${outputTail}`);
    this.exitCode = exitCode;
    this.outputTail = outputTail;
  }

  /** The port it was given was taken between freePort() and the bind: starting again with new ports works. */
  get portTaken(): boolean {
    return /address already in use/i.test(this.outputTail);
  }
}

/** A started child: its log file (when its output goes to one) and the end of its output so far. */
interface Launched {
  child: ChildProcess;
  log?: string;
  tail: () => string;
}

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  launched?: Launched,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const child = launched?.child;
    if (launched && child && child.exitCode !== null) {
      // Its output may still be in the pipe: let it arrive.
      if (child.stdout && !child.stdout.readableEnded)
        await Promise.race([once(child.stdout, 'end').catch(() => undefined), sleep(2000)]);
      // Output that went to the terminal (logToFiles: false) was not kept.
      const tail =
        launched.tail() || (launched.log ? '(no output)' : '(its output went to the terminal above)');
      throw new StartFailure(what, child.exitCode, tail);
    }
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  const log = launched?.log;
  throw new Error(`${what} was not ready within ${timeoutMs / 1000}s${log ? `; see ${log}` : ''}`);
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

export class ControlPlane {
  readonly dir: string;
  readonly kubeconfigPath: string;
  private readonly opts: ControlPlaneOptions;
  private bins!: Binaries;
  private pki!: Pki;
  private etcdPort = 0;
  private etcdPeerPort = 0;
  private apiPort = 0;
  private etcd?: ChildProcess;
  private apiServer?: ChildProcess;
  private controllerManager?: ChildProcess;
  private scheduler?: ChildProcess;
  private readonly logs: WriteStream[] = [];
  private readonly ownsDir: boolean;

  private constructor(dir: string, ownsDir: boolean, opts: ControlPlaneOptions) {
    this.dir = dir;
    this.ownsDir = ownsDir;
    this.opts = opts;
    this.kubeconfigPath = path.join(dir, 'kubeconfig');
  }

  /**
   * Builds the binaries if they are not cached yet, then starts everything and waits for /readyz. A port
   * taken between choosing it and binding it (another process got it from the kernel meanwhile) is a race,
   * not a fault: the start is tried again with new ports, up to three times.
   */
  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ControlPlane.startOnce(opts);
      } catch (err) {
        if (!(err instanceof StartFailure && err.portTaken) || attempt === 3) throw err;
        const first = err.message.split(';')[0] ?? err.message;
        process.stderr.write(`control plane: ${first}: a port it was given was taken; starting again\n`);
        // A caller's own directory is reused: clear what the failed start left.
        if (opts.dir) await rm(opts.dir, { recursive: true, force: true });
      }
    }
  }

  private static async startOnce(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const ownsDir = !opts.dir;
    const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'svid-cp-')));
    await mkdir(dir, { recursive: true });
    const cp = new ControlPlane(dir, ownsDir, opts);
    try {
      cp.bins = await ensureBinaries();
      cp.pki = await makePki(dir, opts.node);
      const pick = opts.pickPort ?? freePort;
      cp.etcdPort = await pick();
      cp.etcdPeerPort = await pick();
      cp.apiPort = await pick();
      await writeKubeconfig(cp.kubeconfigPath, cp.apiServerUrl, cp.pki);
      await cp.startEtcd();
      await cp.startApiServer();
      if (opts.controllerManager ?? true) await cp.startControllerManager();
      if (opts.node) await cp.startScheduler();
    } catch (err) {
      await cp.stop();
      throw err;
    }
    return cp;
  }

  get apiServerUrl(): string {
    return `https://${this.opts.node?.address ?? '127.0.0.1'}:${this.apiPort}`;
  }

  get pkiDir(): string {
    return path.join(this.dir, 'pki');
  }

  get etcdUrl(): string {
    return `http://127.0.0.1:${this.etcdPort}`;
  }

  get binDir(): string {
    return this.bins.dir;
  }

  get kubectl(): string {
    return this.bins.kubectl;
  }

  info(): ControlPlaneInfo {
    return {
      dir: this.dir,
      kubeconfigPath: this.kubeconfigPath,
      apiServerUrl: this.apiServerUrl,
      etcdUrl: this.etcdUrl,
      pids: {
        etcd: this.etcd?.pid ?? 0,
        apiServer: this.apiServer?.pid ?? 0,
        controllerManager: this.controllerManager?.pid,
        scheduler: this.scheduler?.pid,
      },
    };
  }

  private launch(name: string, bin: string, args: string[]): Launched {
    const toFiles = this.opts.logToFiles ?? true;
    const log = toFiles ? path.join(this.dir, `${name}.log`) : undefined;
    const child = spawn(bin, args, { stdio: toFiles ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    // The last few KB of its output, for the error if it dies while starting.
    let last = '';
    const keep = (d: Buffer) => (last = (last + d.toString()).slice(-3000));
    if (log) {
      const stream = createWriteStream(log, { flags: 'a' });
      this.logs.push(stream);
      child.stdout?.pipe(stream, { end: false });
      child.stderr?.pipe(stream, { end: false });
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
    }
    return { child, log, tail: () => last.split('\n').slice(-15).join('\n') };
  }

  private async startEtcd(): Promise<void> {
    const peer = `http://127.0.0.1:${this.etcdPeerPort}`;
    const etcd = this.launch('etcd', this.bins.etcd, [
      `--data-dir=${path.join(this.dir, 'etcd')}`,
      '--name=default',
      `--listen-client-urls=${this.etcdUrl}`,
      `--advertise-client-urls=${this.etcdUrl}`,
      // The peer port is unused by a single member but etcd binds it anyway; keep it on loopback.
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      // Test data is disposable; skipping fsync makes the API server several times faster on small disks.
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    this.etcd = etcd.child;
    await waitFor('etcd', 60_000, () => httpOk(`${this.etcdUrl}/health`), etcd);
  }

  /** Starts kube-apiserver on the same port as before, so clients and kubeconfigs keep working. */
  async startApiServer(): Promise<void> {
    const node = this.opts.node;
    const address = node?.address ?? '127.0.0.1';
    const apiserver = this.launch('kube-apiserver', this.bins.kubeApiserver, [
      `--etcd-servers=${this.etcdUrl}`,
      // Serve only on loopback (or the host end of the node's network namespace), on the port written
      // into the kubeconfig.
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      `--secure-port=${this.apiPort}`,
      `--cert-dir=${path.join(this.dir, 'apiserver-certs')}`,
      `--tls-cert-file=${this.pki.servingCert}`,
      `--tls-private-key-file=${this.pki.servingKey}`,
      // Client certificates signed by this CA authenticate; the admin kubeconfig uses one.
      `--client-ca-file=${this.pki.caCert}`,
      // RBAC, not AlwaysAllow: the chart tests run the operator with its exact, least-privilege RBAC.
      // With a node, kubelets are authorized as nodes and may only touch their own Node and pods; with pod
      // certificates, the Node authorizer decides what node credentials may do.
      ...(node
        ? [
            '--authorization-mode=Node,RBAC',
            '--enable-admission-plugins=NodeRestriction',
            `--kubelet-client-certificate=${this.pki.kubeletClientCert}`,
            `--kubelet-client-key=${this.pki.kubeletClientKey}`,
            `--kubelet-certificate-authority=${this.pki.caCert}`,
            '--kubelet-preferred-address-types=InternalIP',
          ]
        : [`--authorization-mode=${this.opts.podCertificates ? 'Node,RBAC' : 'RBAC'}`]),
      // Service-account tokens (TokenRequest) for running the operator as its ServiceAccount.
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${this.pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${this.pki.serviceAccountKey}`,
      // Required by the API server; without a node no pods run, so any private range will do.
      `--service-cluster-ip-range=${node?.serviceCidr ?? '10.96.0.0/24'}`,
      // Nothing the tests run needs privileged pods.
      '--allow-privileged=false',
      '--profiling=false',
      // (with a node, NodeRestriction is already on above)
      ...(this.opts.podCertificates
        ? POD_CERTIFICATE_FLAGS.filter((f) => !(node && f.startsWith('--enable-admission-plugins=')))
        : []),
      ...(this.opts.apiServerFlags ?? []),
    ]);
    this.apiServer = apiserver.child;
    await waitFor('kube-apiserver', 120_000, () => this.readyz(), apiserver);
  }

  /** Stops kube-apiserver only (etcd and data stay), e.g. to test that clients survive an outage. */
  async stopApiServer(): Promise<void> {
    await terminate(this.apiServer);
    this.apiServer = undefined;
  }

  async restartApiServer(): Promise<void> {
    await this.stopApiServer();
    await this.startApiServer();
  }

  private async startControllerManager(): Promise<void> {
    const { child } = this.launch('kube-controller-manager', this.bins.kubeControllerManager, [
      `--kubeconfig=${this.kubeconfigPath}`,
      // No serving endpoint is needed; 0 disables it and the delegated authn/authz it would require.
      '--secure-port=0',
      // One instance only.
      '--leader-elect=false',
      // Signs the tokens of service-account token Secrets and publishes the CA in kube-root-ca.crt.
      `--service-account-private-key-file=${this.pki.serviceAccountKey}`,
      `--root-ca-file=${this.pki.caCert}`,
      // Garbage collection (owned Secrets) and namespace deletion are what the tests rely on; the rest
      // of the defaults are harmless without nodes.
      '--controllers=*',
      // With a node, each controller acts as its own ServiceAccount (as in a real cluster), so the
      // Deployment and ReplicaSet controllers are subject to the same authorization as elsewhere.
      ...(this.opts.node ? ['--use-service-account-credentials=true'] : []),
    ]);
    this.controllerManager = child;
  }

  /** kube-scheduler, only with a node: without one every pod would stay Pending anyway. */
  private async startScheduler(): Promise<void> {
    const { kubeScheduler } = await ensureNodeBinaries();
    const { child } = this.launch('kube-scheduler', kubeScheduler, [
      `--kubeconfig=${this.kubeconfigPath}`,
      `--authentication-kubeconfig=${this.kubeconfigPath}`,
      `--authorization-kubeconfig=${this.kubeconfigPath}`,
      // Health endpoint on loopback only, on a port chosen for this run.
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
      '--leader-elect=false',
    ]);
    this.scheduler = child;
  }

  /**
   * Stops kube-scheduler and kube-controller-manager, so nothing creates or reschedules pods while a
   * node is torn down (the API server and etcd keep running for the kubelet's last calls).
   */
  async stopControllers(): Promise<void> {
    await terminate(this.scheduler);
    await terminate(this.controllerManager);
  }

  /** GET /readyz with the admin client certificate; true on HTTP 200 "ok". */
  readyz(): Promise<boolean> {
    return readyz(this.apiServerUrl, path.join(this.dir, 'pki'));
  }

  /** Runs the cached kubectl against this control plane. */
  async kubectlRun(args: string[], input?: string): Promise<string> {
    const child = spawn(this.bins.kubectl, [`--kubeconfig=${this.kubeconfigPath}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin.end(input ?? '');
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${code}): ${err.trim()}`);
    return out;
  }

  async stop(): Promise<void> {
    await terminate(this.scheduler);
    await terminate(this.controllerManager);
    await terminate(this.apiServer);
    await terminate(this.etcd);
    for (const stream of this.logs) stream.end();
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** GET <apiServerUrl>/readyz as the admin user whose credentials are in `pkiDir`; true on 200 "ok". */
export async function readyz(apiServerUrl: string, pkiDir: string): Promise<boolean> {
  const [ca, cert, key] = await Promise.all(
    ['ca.crt', 'admin.crt', 'admin.key'].map((f) => readFile(path.join(pkiDir, f))),
  );
  return new Promise((resolve) => {
    const req = https.get(`${apiServerUrl}/readyz`, { ca, cert, key, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'ok'));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/** SIGTERM, then SIGKILL if the process has not exited within 10 s. */
export async function terminate(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
