import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';

export const crdDir = fileURLToPath(new URL('../../crds/', import.meta.url));

/**
 * Every CustomResourceDefinition under crds/. crds/ is the one source of truth (the chart reads it too).
 *
 * Parsed with client-node's loadAllYaml on purpose: its typed models name `default` and
 * `x-kubernetes-validations` `_default` and `x_kubernetes_validations`, and a plain YAML object handed to
 * the typed API silently loses both on serialization.
 */
export async function readCrds(): Promise<k8s.V1CustomResourceDefinition[]> {
  const files = (await readdir(crdDir)).filter((f) => f.endsWith('.yaml')).sort();
  const crds: k8s.V1CustomResourceDefinition[] = [];
  for (const file of files) {
    for (const obj of k8s.loadAllYaml(
      await readFile(path.join(crdDir, file), 'utf8'),
    ) as k8s.KubernetesObject[]) {
      if (obj.kind === 'CustomResourceDefinition') crds.push(obj as k8s.V1CustomResourceDefinition);
    }
  }
  return crds;
}

/** Creates or replaces the CRDs from crds/ and waits until each reports Established=True. */
export async function installCrds(kc: k8s.KubeConfig, timeoutMs = 30_000): Promise<string[]> {
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const names: string[] = [];
  for (const crd of await readCrds()) {
    const name = crd.metadata?.name ?? '';
    try {
      const existing = await api.readCustomResourceDefinition({ name });
      crd.metadata = { ...crd.metadata, resourceVersion: existing.metadata?.resourceVersion };
      await api.replaceCustomResourceDefinition({ name, body: crd });
    } catch (err) {
      if (!(err instanceof k8s.ApiException) || err.code !== 404) throw err;
      await api.createCustomResourceDefinition({ body: crd });
    }
    names.push(name);
  }
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${name} did not become Established within ${timeoutMs / 1000}s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  return names;
}
