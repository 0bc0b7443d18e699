import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { ensureBinaries } from '../../hack/lib/binaries.ts';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';

const run = promisify(execFile);
export const chartDir = fileURLToPath(new URL('../../charts/svid-operator/', import.meta.url));

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

/** `helm <args>` with the cached helm binary. */
export async function helm(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const { helm: bin } = await ensureBinaries();
  return run(bin, args, { maxBuffer: 32 * 1024 * 1024 });
}

/** `helm template` of the chart for a namespace and --set values, parsed into objects. */
export async function renderChart(
  namespace: string,
  set: Record<string, string> = {},
  extra: string[] = [],
): Promise<RenderedObject[]> {
  const sets = Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const { stdout } = await helm([
    'template',
    'svid-operator',
    chartDir,
    '--namespace',
    namespace,
    '--kube-version',
    '1.36.3',
    ...sets,
    ...extra,
  ]);
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as RenderedObject | null)
    .filter((o): o is RenderedObject => !!o);
}

/**
 * A kubeconfig that authenticates as a ServiceAccount with a short-lived TokenRequest token, so a
 * process run with it has exactly the RBAC the chart grants that ServiceAccount.
 */
export async function serviceAccountKubeconfig(
  cp: ControlPlane,
  admin: k8s.KubeConfig,
  namespace: string,
  serviceAccount: string,
  file: string,
): Promise<k8s.KubeConfig> {
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const token = await core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no current cluster');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'local', cluster: { server: cp.apiServerUrl, 'certificate-authority-data': cluster.caData } },
    ],
    users: [{ name: serviceAccount, user: { token: token.status?.token } }],
    contexts: [{ name: 'sa', context: { cluster: 'local', user: serviceAccount, namespace } }],
    'current-context': 'sa',
  };
  await writeFile(file, toYaml(config), { mode: 0o600 });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

export function chartCrdPath(): string {
  return path.join(chartDir, 'crds');
}
