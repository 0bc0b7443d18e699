// The API server's own limit for the writes a wave of first issuances needs: a plain client-node client,
// 16 requests at a time like the bench's creates, makes per identity the two writes the operator makes
// (create its kubernetes.io/tls Secret, merge-patch its WorkloadIdentity's status), with the same content as
// the operator wrote for a wave identity. The WorkloadIdentities are created beforehand and not timed; only
// the Secret creates and status patches are. Run it while no operator runs (it would act on these
// identities), as the harness's admin (exempt from Priority and Fairness): the API server's own pace.
import * as k8s from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type WorkloadIdentity } from '../src/reconcilers/workload-identity/types.ts';
import { createIdentity } from '../test/harness/identities.ts';
import { CREATE_CONCURRENCY, identitySpec, names } from './cluster-context.ts';
import { pool } from './identity-watch.ts';

export interface ApiLimit {
  seconds: number;
  writes: number;
  writesPerSecond: number;
}

export async function measureApiLimit(
  kc: k8s.KubeConfig,
  ns: string,
  n: number,
  template: { secret: k8s.V1Secret; status: WorkloadIdentity['status'] },
): Promise<ApiLimit> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const list = names('ref', n);
  const uids = new Map<string, string>();
  await pool(list, CREATE_CONCURRENCY, async (name) => {
    const created = await createIdentity(kc, ns, name, identitySpec(name));
    uids.set(name, created.metadata.uid ?? '');
  });
  const { secret, status } = template;
  const t0 = performance.now();
  await pool(list, CREATE_CONCURRENCY, async (name) => {
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: `${name}-svid`,
          labels: secret.metadata?.labels,
          annotations: secret.metadata?.annotations,
          // The operator's ownerReference, pointing at this identity.
          ownerReferences: (secret.metadata?.ownerReferences ?? []).map((r) => ({
            ...r,
            name,
            uid: uids.get(name) ?? '',
          })),
        },
        type: secret.type,
        data: secret.data,
      },
    });
    await custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name, body: { status } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  });
  const seconds = (performance.now() - t0) / 1000;
  await custom.deleteCollectionNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
  });
  await core.deleteCollectionNamespacedSecret({ namespace: ns });
  return { seconds, writes: 2 * n, writesPerSecond: (2 * n) / seconds };
}
