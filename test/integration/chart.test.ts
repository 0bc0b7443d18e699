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
import { until } from '../harness/identities.ts';
import { createSelfSignedCa, loadCa, profile } from '../../src/pki/index.ts';
import { KeyUsageFlags } from '../../src/pki/x509.ts';

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
      'Service',
      'ServiceAccount',
    ]);
    const out = await cp.kubectlRun(['apply', '--dry-run=server', '-n', ns, '-f', '-'], toManifest(objects));
    expect(out.trim().split('\n')).to.have.length(objects.length);
    for (const line of out.trim().split('\n')) expect(line).to.match(/\(server dry run\)$/);
  });

  it('sets every operator flag from a value, and the rendered arguments are a valid configuration', async () => {
    const { OPTIONS, parseConfig } = await import('../../src/operator/config.ts');
    const roots = (await createSelfSignedCa({ trustDomain: 'extra.example.org' })).certPem;
    const values = {
      trustDomain: 'flags.example.org',
      clusterDomain: 'corp.local',
      'ca.secretName': 'my-ca',
      'ca.bootstrap': 'false',
      'ca.bootstrapValidityDays': '30',
      caPropagationDelay: '3m',
      minRenewBefore: '2m',
      'allowedDnsPatterns[0]': '*.example.com',
      minDuration: '15m',
      maxDuration: '12h',
      'watchNamespaces[0]': 'team-a',
      concurrency: '4',
      writesInFlight: '12',
      apiQps: '50',
      issuanceRate: '2.5',
      resyncPeriod: '30m',
      logLevel: 'debug',
      'leaderElection.enabled': 'true',
      'leaderElection.id': 'my-lease',
      'metrics.port': '9090',
      healthProbePort: '9091',
      'podCertificates.enabled': 'true',
      'podCertificates.duration': '2h',
      'podCertificates.refreshAfter': '30m',
      'podCertificates.namespaces[0]': 'team-b',
    };
    const objects = await renderChart(ns, values, ['--set-string', `extraTrustRoots=${roots}`]);
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment;
    const container = deployment.spec?.template.spec?.containers[0];
    const args = container?.args ?? [];
    const flags = new Set(args.map((a) => /^--([a-z0-9-]+)=/.exec(a)?.[1]));
    // A new flag in src/operator/config.ts needs a value in the chart: see the comment above OPTIONS.
    const missing = Object.keys(OPTIONS).filter((f) => !flags.has(f));
    expect(missing, `operator flags without a chart value: ${missing.join(', ')}`).to.deep.equal([]);
    const config = parseConfig(args, { POD_NAMESPACE: ns });
    expect(config).to.deep.include({
      trustDomain: 'flags.example.org',
      caSecret: { namespace: ns, name: 'my-ca' },
      clusterDomain: 'corp.local',
      bootstrapDevCa: false,
      bootstrapDevCaValiditySeconds: 30 * 86400,
      caPropagationDelaySeconds: 180,
      minRenewBeforeSeconds: 120,
      allowedDnsPatterns: ['*.example.com'],
      minDurationSeconds: 900,
      maxDurationSeconds: 43200,
      watchNamespaces: ['team-a'],
      concurrency: 4,
      writesInFlight: 12,
      apiQps: 50,
      issuanceRate: 2.5,
      resyncSeconds: 1800,
      logLevel: 'debug',
      leaderElect: true,
      leaderElectionNamespace: ns,
      leaderElectionId: 'my-lease',
      metricsBindAddress: ':9090',
      healthProbeBindAddress: ':9091',
      extraTrustRootsFile: '/etc/svid-operator/extra-trust-roots/roots.pem',
      podCertificates: {
        enabled: true,
        durationSeconds: 7200,
        namespaces: ['team-b'],
        refreshAfterSeconds: 1800,
      },
    });
    // The extra roots come from a ConfigMap mounted where the flag points.
    const cm = objects.find((o) => o.kind === 'ConfigMap') as unknown as k8s.V1ConfigMap;
    expect(cm.data?.['roots.pem']?.trim()).to.equal(roots.trim());
    expect(container?.volumeMounts?.[0]?.mountPath).to.equal('/etc/svid-operator/extra-trust-roots');
    expect(deployment.spec?.template.spec?.volumes?.[0]?.configMap?.name).to.equal(cm.metadata?.name);
    // Everything but the Role/RoleBinding for team-a (a namespace that does not exist here).
    const here = objects.filter((o) => !o.metadata.namespace || o.metadata.namespace === ns);
    const out = await cp.kubectlRun(['apply', '--dry-run=server', '-n', ns, '-f', '-'], toManifest(here));
    expect(out.trim().split('\n')).to.have.length(here.length);
    for (const line of out.trim().split('\n')) expect(line).to.match(/\(server dry run\)$/);
    // extraArgs pass through; a value outside the schema is refused with its path.
    const extra = await renderChart(ns, { 'extraArgs[0]': '--some-new-flag=1' });
    const extraArgs = (extra.find((o) => o.kind === 'Deployment') as unknown as k8s.V1Deployment).spec
      ?.template.spec?.containers[0]?.args;
    expect(extraArgs?.at(-1)).to.equal('--some-new-flag=1');
    const refused = await renderChart(ns, { issuanceRate: '0' }).then(
      () => 'rendered',
      (err: Error) => err.message,
    );
    expect(refused).to.contain('/issuanceRate');
  });

  it('has no Helm-made CA: no genCA, and the same values render the same manifests every time', async () => {
    const { readFile: read, readdir: list } = await import('node:fs/promises');
    for (const file of await list(path.join(chartDir, 'templates'))) {
      expect(await read(path.join(chartDir, 'templates', file), 'utf8'), file).not.to.match(
        /genCA|genPrivateKey/,
      );
    }
    const first = await helm([
      'template',
      'svid-operator',
      chartDir,
      '--namespace',
      ns,
      '--kube-version',
      '1.36.3',
    ]);
    const second = await helm([
      'template',
      'svid-operator',
      chartDir,
      '--namespace',
      ns,
      '--kube-version',
      '1.36.3',
    ]);
    expect(first.stdout).to.equal(second.stdout);
    expect(first.stdout).not.to.contain('PRIVATE KEY');
  });

  it('renders a PrometheusRule only when enabled, on metrics the operator exports, that the API server accepts', async () => {
    expect((await renderChart(ns)).map((o) => o.kind)).not.to.include('PrometheusRule');
    const objects = await renderChart(ns, { 'metrics.prometheusRule.enabled': 'true' });
    const rule = objects.find((o) => o.kind === 'PrometheusRule') as unknown as {
      spec: { groups: { rules: { alert: string; expr: string; for?: string }[] }[] };
    };
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert).sort()).to.deep.equal([
      'SvidOperatorCaNearExpiry',
      'SvidOperatorIssuanceFailing',
      'SvidOperatorNoLeader',
      'SvidOperatorSvidNearExpiry',
    ]);
    // Every metric an alert uses is one the operator registers.
    const { ControllerMetrics } = await import('../../src/reconcilers/workload-identity/metrics.ts');
    const exported = new Set((await new ControllerMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(rules.flatMap((r) => r.expr.match(/svid_operator_[a-z_]+/g) ?? []));
    expect(used.size).to.be.at.least(5);
    for (const name of used) expect(exported.has(name), `${name} is not exported`).to.equal(true);
    const byName = Object.fromEntries(rules.map((r) => [r.alert, r]));
    expect(byName.SvidOperatorSvidNearExpiry?.expr).to.contain('time() < 300');
    expect(byName.SvidOperatorCaNearExpiry?.expr).to.contain(`time() < ${720 * 3600}`);
    expect(byName.SvidOperatorIssuanceFailing?.expr).to.contain('result="failure"');
    expect(byName.SvidOperatorNoLeader?.for).to.equal('10m');
    // The Prometheus Operator's CRD is not installed here: a minimal stand-in lets the API server check
    // the object's shape and names.
    await cp.kubectlRun(
      ['apply', '-f', '-'],
      toYaml({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: 'prometheusrules.monitoring.coreos.com' },
        spec: {
          group: 'monitoring.coreos.com',
          names: {
            kind: 'PrometheusRule',
            plural: 'prometheusrules',
            singular: 'prometheusrule',
            listKind: 'PrometheusRuleList',
          },
          scope: 'Namespaced',
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
            },
          ],
        },
      }),
    );
    const crd = await until('the PrometheusRule CRD is served', 30_000, async () =>
      (await cp.kubectlRun(['api-resources', '--api-group=monitoring.coreos.com']).catch(() => '')).includes(
        'prometheusrules',
      )
        ? true
        : undefined,
    );
    expect(crd).to.equal(true);
    const out = await cp.kubectlRun(['apply', '--dry-run=server', '-n', ns, '-f', '-'], toYaml(rule));
    expect(out).to.contain('prometheusrule.monitoring.coreos.com/svid-operator created (server dry run)');
  });

  it('grants per-namespace Roles instead of a ClusterRole when watchNamespaces is set', async () => {
    const objects = await renderChart(ns, { 'watchNamespaces[0]': 'team-a', 'watchNamespaces[1]': 'team-b' });
    expect(objects.filter((o) => o.kind === 'ClusterRole')).to.have.length(0);
    const roles = objects.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace);
    expect(roles.sort()).to.deep.equal([ns, 'team-a', 'team-b'].sort());
    // The CA rotation's state Secret (and, with ca.bootstrap, the development CA) needs `create` on Secrets
    // in the release namespace (RBAC cannot name an object that does not exist yet); update only by name.
    type Rule = { resources: string[]; verbs: string[]; resourceNames?: string[] };
    const selfRules = async (set: Record<string, string>) =>
      (
        (await renderChart(ns, set)).find(
          (o) => o.kind === 'Role' && o.metadata.name.endsWith('-self'),
        ) as unknown as {
          rules: Rule[];
        }
      ).rules.filter((r) => r.resources.includes('secrets'));
    const namespaced = { 'watchNamespaces[0]': 'team-a' };
    expect(await selfRules(namespaced)).to.deep.include({
      apiGroups: [''],
      resources: ['secrets'],
      verbs: ['create'],
    });
    const without = await selfRules({ ...namespaced, 'ca.bootstrap': 'false' });
    expect(without.filter((r) => !r.resourceNames).flatMap((r) => r.verbs)).to.deep.equal(['create']);
    expect(
      without.filter((r) => r.resourceNames?.[0] === 'svid-operator-ca').flatMap((r) => r.verbs),
    ).to.deep.equal(['get', 'list', 'watch']);
    expect(
      without.filter((r) => r.resourceNames?.[0] === 'svid-operator-ca-rotation').flatMap((r) => r.verbs),
    ).to.deep.equal(['get', 'update']);
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
        ...['get', 'list', 'watch', 'create', 'patch'].map((verb) => ({
          resource: 'secrets',
          verb,
          namespace: 'any-ns',
        })),
        { resource: 'events', verb: 'create', namespace: 'any-ns' },
        // The CA rotation's state, next to the CA Secret.
        ...['get', 'update'].map((verb) => ({
          resource: 'secrets',
          name: 'svid-operator-ca-rotation',
          verb,
          namespace: ns,
        })),
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
      const { OperatorProcess } = await import('../harness/operator-process.ts');
      const { createIdentity, waitReady } = await import('../harness/identities.ts');
      // No CA Secret: the chart's --bootstrap-dev-ca=true makes the operator create one.
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
        // The development CA the operator created: the SPIFFE signing-certificate profile.
        const caSecret = await admin
          .makeApiClient(k8s.CoreV1Api)
          .readNamespacedSecret({ name: 'svid-operator-ca', namespace: ns });
        const text = (k: string) => Buffer.from(caSecret.data?.[k] ?? '', 'base64').toString();
        const ca = await loadCa(
          { certPem: text('tls.crt'), keyPem: text('tls.key'), bundlePem: text('ca.crt') },
          { trustDomain: 'chart.example.org' },
        );
        const p = profile(ca.certificate);
        expect(ca.keySpec).to.deep.equal({ algorithm: 'ECDSA', size: 256 });
        expect(p.isCa).to.equal(true);
        expect(p.basicConstraintsCritical).to.equal(true);
        expect(p.keyUsageCritical).to.equal(true);
        expect(p.keyUsage).to.equal(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign);
        expect(p.uris).to.deep.equal(['spiffe://chart.example.org']);
        expect(op.logs.some((l) => l.message.includes('created a self-signed development CA'))).to.equal(
          true,
        );
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
        // Patches of the owned fields (with the resourceVersion read); a full replace would drop what
        // other tools added to the Secret.
        { resource: 'secrets', verb: 'update', namespace: 'any-ns' },
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
