// One real Kubernetes node on this machine: containerd (+ runc, shims) and the kubelet in the node's own
// network namespace (hack/lib/node-network.ts), kube-proxy in iptables mode there too, and CoreDNS as a
// pod answering the cluster domain only. Images come from archives on disk (`ctr images import`);
// nothing is pulled. Facts, versions and pitfalls behind every setting: ../shared/notes/real-node.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { ensureNodeBinaries, type NodeBinaries } from './binaries.ts';
import { freePort, issueLeaf, terminate, writeClientKubeconfig, type ControlPlane } from './control-plane.ts';
import type { NodeNetwork } from './node-network.ts';
import { writeOciArchive } from './oci-archive.ts';
import type { RunCgroup } from './run-cgroup.ts';

export const pauseImage = 'svid.local/pause:v1.36.3';
export const corednsImage = 'svid.local/coredns:v1.15.0';

export interface NodeOptions {
  /** Image archives (OCI or docker-archive tars) to import besides pause and CoreDNS. */
  images?: string[];
  /**
   * Pod certificates (KEP-4317): the kubelet feature gates for `podCertificate` and `clusterTrustBundle`
   * projected volumes (pkg/features/kube_features.go of v1.36, all off by default); NodeCluster also turns
   * the API server's gates on.
   */
  podCertificates?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LocalNode {
  readonly name: string;
  readonly dir: string;
  private bins!: NodeBinaries;
  private readonly children: { name: string; child: ChildProcess }[] = [];
  private readonly logs: WriteStream[] = [];
  private kubelet?: ChildProcess;
  private containerd?: ChildProcess;
  private kubeProxy?: ChildProcess;

  private readonly cp: ControlPlane;
  private readonly net: NodeNetwork;
  private readonly cgroup: RunCgroup;

  constructor(cp: ControlPlane, net: NodeNetwork, cgroup: RunCgroup, dir: string) {
    this.cp = cp;
    this.net = net;
    this.cgroup = cgroup;
    this.name = `svid-node-${net.id}`;
    this.dir = dir;
  }

  /** Short per-run directory for unix sockets (a socket path has at most 107 bytes). */
  get runDir(): string {
    return `/run/svid-${this.net.id}`;
  }

  get containerdSocket(): string {
    return path.join(this.runDir, 'containerd.sock');
  }

  /** Directories whose mounts the node creates (for the teardown's unmount pass). */
  get mountRoots(): string[] {
    return [this.dir, this.runDir];
  }

  async start(opts: NodeOptions = {}): Promise<void> {
    this.bins = await ensureNodeBinaries();
    await mkdir(this.dir, { recursive: true });
    await this.writeCni();
    await this.startContainerd();
    await this.importImages([...(await this.systemImages()), ...(opts.images ?? [])]);
    await this.startKubelet(opts.podCertificates ?? false);
    await this.startKubeProxy();
    await this.waitReady();
    await this.deployCoreDns();
  }

  /** Runs `ctr -n k8s.io <args>` against this node's containerd. */
  async ctr(args: string[]): Promise<string> {
    return this.net
      .exec(this.bins.ctr, ['--address', this.containerdSocket, '-n', 'k8s.io', ...args])
      .then((r) => r.stdout);
  }

  async importImages(archives: string[]): Promise<void> {
    for (const archive of archives) await this.ctr(['images', 'import', '--local', archive]);
  }

  private launch(name: string, bin: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const log = createWriteStream(path.join(this.dir, `${name}.log`), { flags: 'a' });
    this.logs.push(log);
    // nsenter --net only: the mount namespace stays the host's, so kubelet's volume mounts are seen
    // by containerd and by the teardown.
    const child = spawn('nsenter', [`--net=${this.net.nsPath}`, '--', bin, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: `${this.bins.dir}:/usr/sbin:/usr/bin:/sbin:/bin`, ...env },
    });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    this.children.push({ name, child });
    return child;
  }

  private async adopt(child: ChildProcess): Promise<void> {
    if (child.pid) await this.cgroup.adopt(child.pid);
  }

  private async writeCni(): Promise<void> {
    const a = this.net.addresses;
    const confDir = path.join(this.dir, 'cni', 'net.d');
    await mkdir(confDir, { recursive: true });
    await writeFile(
      path.join(confDir, '10-svid.conflist'),
      JSON.stringify(
        {
          cniVersion: '1.0.0',
          name: `svid-${this.net.id}`,
          plugins: [
            {
              type: 'bridge',
              bridge: this.net.bridge,
              isGateway: true,
              // Pod traffic to the API server leaves through the veth as the node's address.
              ipMasq: true,
              // A pod reaching itself through its Service.
              hairpinMode: true,
              ipam: {
                type: 'host-local',
                ranges: [[{ subnet: a.podCidr, gateway: a.podGateway }]],
                routes: [{ dst: '0.0.0.0/0' }],
                dataDir: path.join(this.dir, 'cni', 'ipam'),
              },
            },
          ],
        },
        null,
        2,
      ),
    );
  }

  private async systemImages(): Promise<string[]> {
    const out = path.join(this.dir, 'images');
    const pause = path.join(out, 'pause.tar');
    const coredns = path.join(out, 'coredns.tar');
    await writeOciArchive(
      { ref: pauseImage, files: { [this.bins.pause]: '/pause' }, entrypoint: ['/pause'] },
      pause,
    );
    await writeOciArchive(
      { ref: corednsImage, files: { [this.bins.coredns]: '/coredns' }, entrypoint: ['/coredns'] },
      coredns,
    );
    return [pause, coredns];
  }

  private async startContainerd(): Promise<void> {
    const c = path.join(this.dir, 'containerd');
    const runtime = "plugins.'io.containerd.cri.v1.runtime'";
    const config = `version = 4
root = '${c}/root'
state = '${c}/state'
# Nothing from the host's /etc/containerd.
imports = []
# NRI would open /var/run/nri/nri.sock; tracing would export spans.
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.internal.v1.tracing', 'io.containerd.tracing.processor.v1.otlp']

[plugins.'io.containerd.server.v1.grpc']
  address = '${this.containerdSocket}'

[plugins.'io.containerd.server.v1.ttrpc']
  address = '${this.containerdSocket}.ttrpc'

[plugins.'io.containerd.server.v1.debug']
  address = ''

[plugins.'io.containerd.server.v1.metrics']
  address = ''

# Shim sockets of this run (the default is the shared /run/containerd/s).
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '${this.runDir}/s'

[plugins.'io.containerd.internal.v1.opt']
  path = '${c}/opt'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${pauseImage}'

[${runtime}]
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj fails in runc with EACCES.
  restrict_oom_score_adj = true
  # Pod network namespaces under this run's state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  enable_criu = false
  [${runtime}.containerd]
    default_runtime_name = 'runc'
    [${runtime}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [${runtime}.containerd.runtimes.runc.options]
        BinaryName = '${this.bins.runc}'
        # runc's state for this run only (the default /run/containerd/runc is shared).
        Root = '${c}/runc'
        SystemdCgroup = false
  [${runtime}.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '${path.join(this.dir, 'cni', 'net.d')}'
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`;
    await mkdir(path.join(this.runDir, 's'), { recursive: true });
    const file = path.join(this.dir, 'containerd.toml');
    await writeFile(file, config);
    this.containerd = this.launch('containerd', this.bins.containerd, ['--config', file]);
    await this.adopt(this.containerd);
    await this.waitFor('containerd', 60_000, this.containerd, async () => {
      await this.ctr(['version']);
      return true;
    });
  }

  private async startKubelet(podCertificates: boolean): Promise<void> {
    const a = this.net.addresses;
    const pki = this.cp.pkiDir;
    const client = await issueLeaf(
      pki,
      'kubelet-client',
      `/O=system:nodes/CN=system:node:${this.name}`,
      'extendedKeyUsage=clientAuth\n',
    );
    const serving = await issueLeaf(
      pki,
      'kubelet-serving',
      `/CN=${this.name}`,
      `subjectAltName=IP:${a.nodeIp},DNS:${this.name}\nextendedKeyUsage=serverAuth\n`,
    );
    const kubeconfig = path.join(this.dir, 'kubelet.kubeconfig');
    await writeClientKubeconfig(
      kubeconfig,
      this.cp.apiServerUrl,
      path.join(pki, 'ca.crt'),
      client.cert,
      client.key,
      this.name,
    );
    // Pods with dnsPolicy Default (CoreDNS itself) get no upstream: nothing resolves off this machine.
    const resolvConf = path.join(this.dir, 'resolv.conf');
    await writeFile(resolvConf, '# no upstream DNS for pods of the local node\n');
    const config = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // This host has cgroup v1 only (a VM setting); kubelet 1.36 refuses it unless told.
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      // Pods under this run's cgroup, killed and removed with it on teardown.
      cgroupRoot: `/${this.cgroup.name}`,
      containerRuntimeEndpoint: `unix://${this.containerdSocket}`,
      podLogsDir: path.join(this.dir, 'pod-logs'),
      address: a.nodeIp,
      port: await freePort(),
      healthzBindAddress: '127.0.0.1',
      healthzPort: await freePort(),
      readOnlyPort: 0,
      tlsCertFile: serving.cert,
      tlsPrivateKeyFile: serving.key,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: path.join(pki, 'ca.crt') },
      },
      authorization: { mode: 'Webhook' },
      clusterDNS: [a.dnsServiceIp],
      clusterDomain: 'cluster.local',
      resolvConf,
      failSwapOn: false,
      // Fast Secret propagation into pods (1.4–2.1 s measured) for the rotation tests.
      syncFrequency: '1s',
      // Imported images cannot be pulled again: never garbage-collect them, never evict for disk.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: {
        'memory.available': '1Mi',
        'nodefs.available': '1%',
        'imagefs.available': '1%',
        'nodefs.inodesFree': '1%',
      },
      maxPods: 50,
      rotateCertificates: false,
      serializeImagePulls: false,
      ...(podCertificates
        ? {
            featureGates: {
              PodCertificateRequest: true,
              ClusterTrustBundle: true,
              ClusterTrustBundleProjection: true,
            },
          }
        : {}),
    };
    const configFile = path.join(this.dir, 'kubelet.yaml');
    await writeFile(configFile, toYaml(config));
    this.kubelet = this.launch('kubelet', this.bins.kubelet, [
      `--config=${configFile}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${path.join(this.dir, 'kubelet')}`,
      `--hostname-override=${this.name}`,
      `--node-ip=${a.nodeIp}`,
      '--v=1',
    ]);
    await this.adopt(this.kubelet);
  }

  private async startKubeProxy(): Promise<void> {
    const a = this.net.addresses;
    const pki = this.cp.pkiDir;
    // system:kube-proxy is bound to system:node-proxier by the API server's bootstrap policy.
    const client = await issueLeaf(
      pki,
      'kube-proxy',
      '/CN=system:kube-proxy',
      'extendedKeyUsage=clientAuth\n',
    );
    const kubeconfig = path.join(this.dir, 'kube-proxy.kubeconfig');
    await writeClientKubeconfig(
      kubeconfig,
      this.cp.apiServerUrl,
      path.join(pki, 'ca.crt'),
      client.cert,
      client.key,
      'kube-proxy',
    );
    const config = {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig },
      mode: 'iptables',
      clusterCIDR: a.podCidr,
      hostnameOverride: this.name,
      bindAddress: a.nodeIp,
      healthzBindAddress: `127.0.0.1:${await freePort()}`,
      metricsBindAddress: `127.0.0.1:${await freePort()}`,
      // Leave the conntrack table size alone (nf_conntrack_max is global).
      conntrack: { maxPerCore: 0, min: 0 },
      nodePortAddresses: [`${a.nodeIp}/32`],
    };
    const configFile = path.join(this.dir, 'kube-proxy.yaml');
    await writeFile(configFile, toYaml(config));
    this.kubeProxy = this.launch('kube-proxy', this.bins.kubeProxy, [`--config=${configFile}`]);
    await this.adopt(this.kubeProxy);
  }

  private async waitFor(
    what: string,
    timeoutMs: number,
    child: ChildProcess,
    check: () => Promise<boolean>,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(
          `${what} exited with code ${child.exitCode}; see ${path.join(this.dir, `${what}.log`)}`,
        );
      }
      if (await check().catch(() => false)) return;
      await sleep(500);
    }
    throw new Error(
      `${what} was not ready within ${timeoutMs / 1000}s; see ${path.join(this.dir, `${what}.log`)}`,
    );
  }

  private async waitReady(): Promise<void> {
    const kubelet = this.kubelet;
    if (!kubelet) throw new Error('the kubelet was not started');
    await this.waitFor('kubelet', 180_000, kubelet, async () => {
      const out = await this.cp.kubectlRun([
        'get',
        'node',
        this.name,
        '-o',
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
      ]);
      return out.trim() === 'True';
    });
  }

  private async deployCoreDns(): Promise<void> {
    const a = this.net.addresses;
    const manifests = corednsManifests(a.dnsServiceIp);
    await this.cp.kubectlRun(['apply', '-f', '-'], manifests);
    await this.cp.kubectlRun([
      '-n',
      'kube-system',
      'rollout',
      'status',
      'deployment/coredns',
      '--timeout=180s',
    ]);
  }

  /** IDs of every container and pod sandbox containerd knows (for cleaning the CNI cache). */
  async containerIds(): Promise<string[]> {
    return (await this.ctr(['containers', 'ls', '-q'])).split('\n').filter(Boolean);
  }

  /** Stops the kubelet, kube-proxy and containerd (pods and shims are the cgroup teardown's job). */
  async stopDaemons(): Promise<void> {
    await terminate(this.kubelet);
    await terminate(this.kubeProxy);
    await terminate(this.containerd);
    for (const { child } of this.children) await terminate(child);
    for (const log of this.logs) log.end();
  }

  /** The last lines of one daemon's log, for error messages. */
  async logTail(name: string, lines = 30): Promise<string> {
    try {
      return (await readFile(path.join(this.dir, `${name}.log`), 'utf8'))
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '';
    }
  }

  /** Resolves when one of the daemons exits, with its name. */
  async anyExit(): Promise<string> {
    return Promise.race(this.children.map(({ name, child }) => once(child, 'exit').then(() => name)));
  }
}

/** CoreDNS for the cluster domain only: no `forward`, so no name leaves the cluster. */
export function corednsManifests(dnsIp: string): string {
  const corefile = `cluster.local:1053 in-addr.arpa:1053 ip6.arpa:1053 {
    errors
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
    }
    cache 5
}
`;
  const docs = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: 'kube-system' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'svid:coredns' },
      rules: [
        {
          apiGroups: [''],
          resources: ['endpoints', 'services', 'pods', 'namespaces'],
          verbs: ['list', 'watch'],
        },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'svid:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'svid:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'coredns', namespace: 'kube-system' },
      data: { Corefile: corefile },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: 'kube-system' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'k8s-app': 'kube-dns' } },
        template: {
          metadata: { labels: { 'k8s-app': 'kube-dns' } },
          spec: {
            serviceAccountName: 'coredns',
            dnsPolicy: 'Default',
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              runAsGroup: 65532,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'coredns',
                image: corednsImage,
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                ports: [
                  { name: 'dns', containerPort: 1053, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 1053, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
      spec: {
        clusterIP: dnsIp,
        selector: { 'k8s-app': 'kube-dns' },
        ports: [
          { name: 'dns', port: 53, targetPort: 1053, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: 1053, protocol: 'TCP' },
        ],
      },
    },
  ];
  return docs.map((d) => toYaml(d)).join('---\n');
}
