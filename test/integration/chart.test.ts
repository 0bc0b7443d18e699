import { expect } from 'chai';
import { lstat, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { crdDir } from '../../hack/lib/crds.ts';
import { chartCrdPath, chartDir, helm, renderChart, serviceAccountKubeconfig } from '../harness/chart.ts';
import type { RenderedObject } from '../harness/chart.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const toManifest = (objects: RenderedObject[]) => objects.map((o) => toYaml(o)).join('---\n');

describe('Helm chart', function () {
  this.timeout(5 * 60_000);
  let cp: ControlPlane;
  let admin: k8s.KubeConfig;
  let tmp: string;
  const ns = `svid-chart-${randomBytes(3).toString('hex')}`;

  before(async () => {
    cp = await getControlPlane();
    admin = kubeConfig(cp);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'svid-chart-'));
    await admin.makeApiClient(k8s.CoreV1Api).createNamespace({
      body: {
        metadata: {
          name: ns,
          // Pods in this namespace must meet the "restricted" Pod Security Standard, or are refused.
          labels: { 'pod-security.kubernetes.io/enforce': 'restricted' },
        },
      },
    });
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('passes helm lint --strict', async () => {
    const { stdout } = await helm(['lint', '--strict', chartDir]);
    expect(stdout).to.contain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('ships the CRD from crds/ itself (one source of truth)', async () => {
    expect((await lstat(chartCrdPath())).isSymbolicLink()).to.equal(true);
    for (const file of await readdir(crdDir)) {
      const inChart = await readFile(path.join(chartCrdPath(), file), 'utf8');
      expect(inChart).to.equal(await readFile(path.join(crdDir, file), 'utf8'));
    }
    const { stdout } = await helm(['show', 'crds', chartDir]);
    expect(stdout).to.contain('name: workloadidentities.identity.svid.dev');
  });

  it('renders manifests the API server accepts (server-side dry run)', async () => {
    const objects = await renderChart(ns);
    expect(objects.map((o) => o.kind).sort()).to.deep.equal([
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'Role',
      'RoleBinding',
      'Secret',
      'Service',
      'ServiceAccount',
    ]);
    const out = await cp.kubectlRun(['apply', '--dry-run=server', '-n', ns, '-f', '-'], toManifest(objects));
    expect(out.trim().split('\n')).to.have.length(objects.length);
    for (const line of out.trim().split('\n')) expect(line).to.match(/\(server dry run\)$/);
  });

  it('grants per-namespace Roles instead of a ClusterRole when watchNamespaces is set', async () => {
    const objects = await renderChart(ns, { 'watchNamespaces[0]': 'team-a', 'watchNamespaces[1]': 'team-b' });
    expect(objects.filter((o) => o.kind === 'ClusterRole')).to.have.length(0);
    const roles = objects.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace);
    expect(roles.sort()).to.deep.equal([ns, 'team-a', 'team-b'].sort());
  });

  it('refuses several replicas without leader election, and values outside the schema', async () => {
    const failure = (set: Record<string, string>) =>
      renderChart(ns, set).then(
        () => expect.fail('helm template should have failed'),
        (err: Error) => err.message,
      );
    expect(await failure({ replicaCount: '2', 'leaderElection.enabled': 'false' })).to.contain(
      'replicaCount > 1 needs leaderElection.enabled=true',
    );
    expect(await failure({ trustDomain: 'Not_A/Domain' })).to.contain('/trustDomain');
    expect(await failure({ logLevel: 'chatty' })).to.contain('/logLevel');
  });

  describe("with the chart's RBAC applied", () => {
    let sa: k8s.KubeConfig;
    const saName = 'svid-operator';

    before(async () => {
      const objects = (await renderChart(ns)).filter((o) =>
        ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind),
      );
      // The ClusterRole/Binding names are per release; give this test run its own.
      for (const o of objects) {
        if (o.kind.startsWith('Cluster')) o.metadata.name = `${o.metadata.name}-${ns}`;
        if (o.kind === 'ClusterRoleBinding')
          (o as unknown as { roleRef: { name: string } }).roleRef.name += `-${ns}`;
      }
      await cp.kubectlRun(['apply', '-n', ns, '-f', '-'], toManifest(objects));
      sa = await serviceAccountKubeconfig(cp, admin, ns, saName, path.join(tmp, 'sa.kubeconfig'));
    });

    after(async () => {
      const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
      await rbac.deleteClusterRoleBinding({ name: `${saName}-${ns}` }).catch(() => undefined);
      await rbac.deleteClusterRole({ name: `${saName}-${ns}` }).catch(() => undefined);
    });

    const can = async (attrs: k8s.V1ResourceAttributes): Promise<boolean> => {
      const review = await sa.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: attrs } },
      });
      return review.status?.allowed === true;
    };

    it('runs a pod that meets the "restricted" Pod Security Standard', async () => {
      const deployment = (await renderChart(ns)).find(
        (o) => o.kind === 'Deployment',
      ) as unknown as k8s.V1Deployment;
      const pod: k8s.V1Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'psa-check', namespace: ns },
        spec: deployment.spec?.template.spec,
      };
      // The API server's PodSecurity admission rejects the pod in this namespace if it falls short.
      const out = await cp.kubectlRun(['create', '--dry-run=server', '-f', '-'], toYaml(pod));
      expect(out).to.contain('pod/psa-check created (server dry run)');
    });

    it('allows every verb the operator uses', async () => {
      const wid = { group: 'identity.svid.dev', resource: 'workloadidentities' };
      const needed: k8s.V1ResourceAttributes[] = [
        ...['list', 'watch'].map((verb) => ({ ...wid, verb, namespace: 'any-ns' })),
        { ...wid, subresource: 'status', verb: 'patch', namespace: 'any-ns' },
        // Patches of its own Secret fields carry the resourceVersion read (conditional, never blind).
        ...['get', 'list', 'watch', 'create', 'update', 'patch'].map((verb) => ({
          resource: 'secrets',
          verb,
          namespace: 'any-ns',
        })),
        { resource: 'events', verb: 'create', namespace: 'any-ns' },
        ...['get', 'create', 'update'].map((verb) => ({
          group: 'coordination.k8s.io',
          resource: 'leases',
          verb,
          namespace: ns,
        })),
      ];
      for (const attrs of needed) expect(await can(attrs), JSON.stringify(attrs)).to.equal(true);
    });

    it("runs the operator with exactly the chart's RBAC (leader election on) and it issues an SVID", async () => {
      const { createSelfSignedCa } = await import('../../src/pki/index.ts');
      const { OperatorProcess } = await import('../harness/operator-process.ts');
      const { createIdentity, putCaSecret, waitReady } = await import('../harness/identities.ts');
      const ca = await createSelfSignedCa({ trustDomain: 'chart.example.org' });
      await putCaSecret(admin, ns, 'svid-operator-ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
      const deployment = (await renderChart(ns)).find(
        (o) => o.kind === 'Deployment',
      ) as unknown as k8s.V1Deployment;
      // The chart's own arguments, with ports moved to loopback and the watch narrowed to this test.
      const args = (deployment.spec?.template.spec?.containers[0]?.args ?? [])
        .filter(
          (a) => !a.startsWith('--metrics-bind-address') && !a.startsWith('--health-probe-bind-address'),
        )
        .map((a) => (a.startsWith('--trust-domain=') ? '--trust-domain=chart.example.org' : a));
      const op = new OperatorProcess(path.join(tmp, 'sa.kubeconfig'), [...args, `--watch-namespace=${ns}`], {
        POD_NAME: 'svid-operator-0',
      });
      try {
        await op.start();
        await createIdentity(admin, ns, 'rbac-check', {
          serviceAccountName: 'rbac-check',
          secretName: 'rbac-check-svid',
        });
        const w = await waitReady(admin, ns, 'rbac-check');
        expect(w.status?.spiffeID).to.equal(`spiffe://chart.example.org/ns/${ns}/sa/rbac-check`);
        const lease = await admin
          .makeApiClient(k8s.CoordinationV1Api)
          .readNamespacedLease({ name: 'svid-operator', namespace: ns });
        expect(lease.spec?.holderIdentity).to.equal('svid-operator-0');
        const events = await admin.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: ns });
        expect(events.items.map((e) => e.reason)).to.include('Issued');
        // Transient answers (e.g. 429 while a new CRD's watch cache warms up) are retried; a 403 would mean
        // the chart's RBAC lacks something.
        const denied = op.logs.filter((l) =>
          /HTTP 403|Forbidden|forbidden/.test(`${l.message} ${String(l.error ?? '')}`),
        );
        expect(denied.map((l) => `${l.message}: ${String(l.error)}`)).to.deep.equal([]);
      } finally {
        await op.stop();
      }
    });

    it('refuses verbs the operator does not need', async () => {
      const wid = { group: 'identity.svid.dev', resource: 'workloadidentities', namespace: 'any-ns' };
      const notNeeded: k8s.V1ResourceAttributes[] = [
        // Owned Secrets go away by garbage collection; the operator never deletes one.
        { resource: 'secrets', verb: 'delete', namespace: 'any-ns' },
        { resource: 'secrets', verb: 'deletecollection', namespace: 'any-ns' },
        { ...wid, verb: 'patch' },
        { ...wid, subresource: 'status', verb: 'update' },
        // It reports on status only; spec belongs to the user.
        { ...wid, verb: 'create' },
        { ...wid, verb: 'update' },
        { ...wid, verb: 'delete' },
        { resource: 'configmaps', verb: 'get', namespace: 'any-ns' },
        { resource: 'pods', verb: 'list', namespace: 'any-ns' },
        { resource: 'serviceaccounts', verb: 'create', namespace: 'any-ns', subresource: 'token' },
        // Leases only in its own namespace.
        { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: 'kube-system' },
        { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', verb: 'escalate' },
        { group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', verb: 'update' },
      ];
      for (const attrs of notNeeded) expect(await can(attrs), JSON.stringify(attrs)).to.equal(false);
    });
  });
});
