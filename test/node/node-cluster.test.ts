import { rm } from 'node:fs/promises';
import { expect } from 'chai';
import { snapshotHost, readSysctls, type HostSnapshot } from '../../hack/lib/host-state.ts';
import { NodeCluster } from '../../hack/lib/node-cluster.ts';
import { describeProcess } from '../../hack/lib/run-processes.ts';
import { busyboxImage, buildBusyboxImage } from '../harness/node-images.ts';
import { requireNodeHost } from '../harness/node-host.ts';

// One real node (kubelet + containerd + runc) on this machine: it registers Ready, a pod reaches the API
// server through the `kubernetes` Service by its cluster DNS name, and after teardown the host is as
// before: no node process, mount, network namespace, link, iptables chain, cgroup or shim socket left,
// every sysctl back to its value.
describe('a real local node', function () {
  this.timeout(40 * 60_000);
  let hostBefore: HostSnapshot;
  let image: string | undefined;
  let cluster: NodeCluster | undefined;
  const live = () => {
    if (!cluster) throw new Error('the node cluster is not running');
    return cluster;
  };

  before(async function () {
    await requireNodeHost(this);
    hostBefore = await snapshotHost();
    image = await buildBusyboxImage();
    cluster = await NodeCluster.start({ images: [image] });
  });

  after(async () => {
    await cluster?.stop();
    if (image) await rm(image, { force: true });
  });

  it('registers Ready, and a pod reaches the API server through its Service and CoreDNS', async () => {
    const cp = live().cp;
    const nodes = await cp.kubectlRun(['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}']);
    expect(nodes.trim()).to.equal(live().node.name);
    await cp.kubectlRun(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'probe', namespace: 'default' },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'probe',
              image: busyboxImage,
              imagePullPolicy: 'Never',
              // CoreDNS answers the cluster domain; the `kubernetes` ClusterIP leads (kube-proxy DNAT, out
              // through the veth) to the API server. Plain HTTP to its TLS port gets Go's answer
              // "Client sent an HTTP request to an HTTPS server" (busybox's TLS lacks its ciphers).
              command: [
                '/bin/busybox',
                'sh',
                '-c',
                "/bin/busybox nslookup kubernetes.default.svc.cluster.local && printf 'GET /livez HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT",
              ],
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
        },
      }),
    );
    const phase = await waitPodDone(live(), 'probe');
    const logs = await cp.kubectlRun(['logs', 'probe']).catch((e: Error) => e.message);
    expect(phase, `probe pod logs: ${logs}`).to.equal('Succeeded');
    expect(logs).to.match(/Address:\s+\d+\.\d+\.\d+\.65/);
    expect(logs).to.include('Client sent an HTTP request to an HTTPS server');
  });

  it('keeps its bridge and iptables chains inside its own network namespace', async () => {
    const host = await snapshotHost();
    expect(host.links.some((l) => l.startsWith(live().network.bridge))).to.equal(false);
    expect(host.iptablesChains.filter((c) => /KUBE-|CNI-/.test(c))).to.deep.equal(
      hostBefore.iptablesChains.filter((c) => /KUBE-|CNI-/.test(c)),
    );
    const inside = (await live().network.exec('iptables-save', [])).stdout;
    expect(inside).to.include(':KUBE-SERVICES');
    const links = (await live().network.exec('ip', ['-o', 'link', 'show'])).stdout;
    expect(links).to.include(live().network.bridge);
    expect(host.cgroups).to.include(`memory/svid-${live().network.id}`);
  });

  it('leaves the host as it was after teardown', async () => {
    const during = await readSysctls();
    const changed = [...during].filter(([k, v]) => hostBefore.sysctls[k] !== v).map(([k]) => k);
    // The kubelet sets these on start; the teardown must put them back.
    expect(changed).to.include.members(['vm.overcommit_memory', 'kernel.panic']);
    const report = await live().stop();
    cluster = undefined;
    expect(report.sysctlsRestored).to.include.members(changed);
    const after = await snapshotHost();
    // Where a process left behind came from (state, parent, cgroups), and what the teardown's second net
    // (processes of the run found by their command line) had to kill.
    const left = after.processes.filter((p) => !hostBefore.processes.includes(p));
    const details = await Promise.all(left.map((p) => describeProcess(Number(p.split(' ')[0]))));
    expect(
      after.processes,
      `node processes: ${details.join('; ')}; outside the cgroup at teardown: ${report.outsideCgroup.join('; ') || 'none'}`,
    ).to.deep.equal(hostBefore.processes);
    if (report.outsideCgroup.length || report.unreaped.length)
      console.log(
        `    teardown: killed outside the run cgroup: ${report.outsideCgroup.join('; ') || 'none'}; ` +
          `zombies not reaped by their parent: ${report.unreaped.join('; ') || 'none'}`,
      );
    expect(after.mounts, 'mounts').to.deep.equal(hostBefore.mounts);
    expect(after.netns, 'network namespaces').to.deep.equal(hostBefore.netns);
    expect(after.links, 'links').to.deep.equal(hostBefore.links);
    expect(after.iptablesChains, 'iptables chains').to.deep.equal(hostBefore.iptablesChains);
    expect(after.cgroups, 'cgroups').to.deep.equal(hostBefore.cgroups);
    expect(after.shimSockets, '/run/containerd/s').to.deep.equal(hostBefore.shimSockets);
    expect(after.runContainerd, '/run/containerd').to.deep.equal(hostBefore.runContainerd);
    expect(after.runDirs, '/run/svid-*').to.deep.equal(hostBefore.runDirs);
    expect(after.cniCache, '/var/lib/cni/results').to.deep.equal(hostBefore.cniCache);
    expect(after.sysctls, 'sysctls').to.deep.equal(hostBefore.sysctls);
  });
});

async function waitPodDone(cluster: NodeCluster, name: string): Promise<string> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const phase = (
      await cluster.cp.kubectlRun(['get', 'pod', name, '-o', 'jsonpath={.status.phase}'])
    ).trim();
    if (phase === 'Succeeded' || phase === 'Failed') return phase;
    if (Date.now() > deadline) throw new Error(`pod ${name} still ${phase} after 180 s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
