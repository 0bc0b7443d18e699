import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { WorkloadIdentity } from '../../src/reconcilers/workload-identity/types.ts';

export const wid = (kc: k8s.KubeConfig) => kc.makeApiClient(k8s.CustomObjectsApi);

const base = { group: 'identity.svid.dev', version: 'v1alpha1', plural: 'workloadidentities' };

export async function createIdentity(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<WorkloadIdentity> {
  return (await wid(kc).createNamespacedCustomObject({
    ...base,
    namespace,
    body: {
      apiVersion: 'identity.svid.dev/v1alpha1',
      kind: 'WorkloadIdentity',
      metadata: { name, namespace },
      spec,
    },
  })) as WorkloadIdentity;
}

export async function getIdentity(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<WorkloadIdentity> {
  return (await wid(kc).getNamespacedCustomObject({ ...base, namespace, name })) as WorkloadIdentity;
}

export async function patchSpec(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
) {
  return wid(kc).patchNamespacedCustomObject(
    { ...base, namespace, name, body: { spec } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
}

export const ready = (w: WorkloadIdentity) => w.status?.conditions?.find((c) => c.type === 'Ready');

/** Ready with an issued SVID. */
export const isReady = (w: WorkloadIdentity) => ready(w)?.status === 'True' && !!w.status?.serialNumber;

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs` with the last state. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function waitReady(
  kc: k8s.KubeConfig,
  ns: string,
  name: string,
  timeoutMs = 30_000,
  notSerial?: string,
) {
  return until(`${ns}/${name} Ready`, timeoutMs, async () => {
    const w = await getIdentity(kc, ns, name);
    return isReady(w) && w.status?.serialNumber !== notSerial ? w : undefined;
  });
}

export async function waitReason(
  kc: k8s.KubeConfig,
  ns: string,
  name: string,
  reason: string,
  timeoutMs = 30_000,
) {
  return until(`${ns}/${name} reason ${reason}`, timeoutMs, async () => {
    const w = await getIdentity(kc, ns, name);
    return ready(w)?.reason === reason ? w : undefined;
  });
}

export async function readSvidSecret(kc: k8s.KubeConfig, namespace: string, name: string) {
  const s = await kc.makeApiClient(k8s.CoreV1Api).readNamespacedSecret({ namespace, name });
  const text = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString();
  const crt = text('tls.crt');
  return { secret: s, crt, key: text('tls.key'), ca: text('ca.crt'), leaf: new X509Certificate(crt) };
}

export async function createNamespace(kc: k8s.KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

export async function putCaSecret(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  data: Record<string, string>,
): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const body: k8s.V1Secret = { metadata: { name, namespace }, stringData: data };
  try {
    const existing = await core.readNamespacedSecret({ name, namespace });
    await core.replaceNamespacedSecret({
      name,
      namespace,
      body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } },
    });
  } catch (err) {
    if (!(err instanceof k8s.ApiException) || err.code !== 404) throw err;
    await core.createNamespacedSecret({ namespace, body });
  }
}
