// The operator runs as it does when installed by the chart: as the chart's ServiceAccount with exactly the
// chart's RBAC, authenticated by a TokenRequest token. This matters for the figures: the API server's
// Priority and Fairness puts a ServiceAccount in the `service-accounts` flow schema (priority level
// `workload-low`), whereas the harness's admin certificate (system:masters) would be exempt from it.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import type { ControlPlane } from '../hack/lib/control-plane.ts';
import { renderChart } from '../test/harness/chart.ts';

const RBAC_KINDS = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];

/**
 * Applies the chart's ServiceAccount and RBAC for a release in `namespace` whose CA Secret is `caSecret`,
 * and writes a kubeconfig for that ServiceAccount to `file`; returns the ServiceAccount's user name.
 */
export async function operatorKubeconfig(
  cp: ControlPlane,
  admin: k8s.KubeConfig,
  namespace: string,
  caSecret: string,
  file: string,
): Promise<string> {
  const objects = (await renderChart(namespace, { 'ca.secretName': caSecret })).filter((o) =>
    RBAC_KINDS.includes(o.kind),
  );
  const manifest = objects.map((o) => `---\n${toYaml(o)}`).join('');
  await cp.kubectlRun(['apply', '-n', namespace, '-f', '-'], manifest);
  const account = objects.find((o) => o.kind === 'ServiceAccount')?.metadata.name;
  if (!account) throw new Error('the chart rendered no ServiceAccount');
  // Long enough for the longest run (--long); the API server here sets no shorter maximum.
  const token = await admin.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
    name: account,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 6 * 3600 } },
  });
  const cluster = admin.getCurrentCluster();
  if (!cluster || !token.status?.token) throw new Error('no cluster or no token for the operator');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'local', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } },
    ],
    users: [{ name: account, user: { token: token.status.token } }],
    contexts: [{ name: 'operator', context: { cluster: 'local', user: account, namespace } }],
    'current-context': 'operator',
  };
  await writeFile(file, toYaml(config), { mode: 0o600 });
  return `system:serviceaccount:${namespace}:${account}`;
}

export const operatorKubeconfigPath = (cp: ControlPlane) => path.join(cp.info().dir, 'operator.kubeconfig');
