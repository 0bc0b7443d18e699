// `svidctl status` and `svidctl renew`: the commands that talk to the cluster (like cert-manager's cmctl),
// with the kubeconfig from --kubeconfig, else $KUBECONFIG / ~/.kube/config / in-cluster.
import * as k8s from '@kubernetes/client-node';
import { parseArgs } from 'node:util';
import { ANNOTATION_RENEW_REQUEST } from '../controller/renew-request.ts';
import { GROUP, KIND, PLURAL, VERSION, type WorkloadIdentity } from '../controller/types.ts';
import { formatStatus, type Read } from './identity-status.ts';

export class ClusterUsageError extends Error {}

export interface ClusterIo {
  out: (line: string) => void;
  now: () => Date;
  /** The kubeconfig to use; tests pass one, the CLI loads the default. */
  kubeConfig?: (file: string | undefined) => k8s.KubeConfig;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function target(args: string[], io: ClusterIo, command: string) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { namespace: { type: 'string', short: 'n' }, kubeconfig: { type: 'string' } },
    });
  } catch (err) {
    throw new ClusterUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const name = positionals[0];
  if (!name || positionals.length > 1) {
    throw new ClusterUsageError(
      `${command} takes exactly one WorkloadIdentity name: svidctl ${command} NAME -n NAMESPACE`,
    );
  }
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw new ClusterUsageError(
      `"${name.slice(0, 80)}" is not a valid WorkloadIdentity name (lowercase DNS subdomain)`,
    );
  }
  const kc = io.kubeConfig ? io.kubeConfig(values.kubeconfig) : defaultKubeConfig(values.kubeconfig);
  const namespace = values.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw new ClusterUsageError(`"${namespace.slice(0, 80)}" is not a valid namespace name`);
  }
  return { name, namespace, kc };
}

function defaultKubeConfig(file: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

const notFoundMessage = (namespace: string, name: string) =>
  `WorkloadIdentity ${namespace}/${name} not found: check the name and -n NAMESPACE (kubectl get workloadidentities -A)`;

const notFound = (err: unknown) => err instanceof k8s.ApiException && err.code === 404;

async function readIdentity(kc: k8s.KubeConfig, namespace: string, name: string): Promise<WorkloadIdentity> {
  try {
    return (await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
    })) as WorkloadIdentity;
  } catch (err) {
    if (notFound(err)) throw new Error(notFoundMessage(namespace, name), { cause: err });
    throw err;
  }
}

/** svidctl status NAME -n NS: the identity's SVID, renewal, conditions, the Secret and the last events. */
export async function status(args: string[], io: ClusterIo): Promise<number> {
  const { name, namespace, kc } = target(args, io, 'status');
  const wi = await readIdentity(kc, namespace, name);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  // The Secret and the events are extra detail: a user who may read the identity but not those still
  // gets the rest, with the reason.
  let secret: Read<k8s.V1Secret | undefined>;
  try {
    secret = { ok: true, value: await core.readNamespacedSecret({ name: wi.spec.secretName, namespace }) };
  } catch (err) {
    secret = notFound(err) ? { ok: true, value: undefined } : { ok: false, why: describeApiError(err) };
  }
  let events: Read<k8s.CoreV1Event[]>;
  try {
    const list = await core.listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.kind=${KIND},involvedObject.name=${name}`,
    });
    // Events of an earlier identity of the same name are not this one's.
    events = { ok: true, value: list.items.filter((e) => e.involvedObject.uid === wi.metadata.uid) };
  } catch (err) {
    events = { ok: false, why: describeApiError(err) };
  }
  for (const line of formatStatus(wi, secret, events, io.now())) io.out(line);
  return 0;
}

/**
 * svidctl renew NAME -n NS: asks the operator for a new SVID now by setting the renew-request annotation to
 * the current time; the operator re-issues once for each distinct value and records it on status.
 */
export async function renew(args: string[], io: ClusterIo): Promise<number> {
  const { name, namespace, kc } = target(args, io, 'renew');
  const value = io.now().toISOString();
  try {
    await kc.makeApiClient(k8s.CustomObjectsApi).patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
        body: { metadata: { annotations: { [ANNOTATION_RENEW_REQUEST]: value } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  } catch (err) {
    if (notFound(err)) throw new Error(notFoundMessage(namespace, name), { cause: err });
    throw err;
  }
  io.out(
    `requested a new SVID for ${namespace}/${name} (${ANNOTATION_RENEW_REQUEST}=${value}); svidctl status ${name} -n ${namespace} shows when it is issued`,
  );
  return 0;
}

function describeApiError(err: unknown): string {
  if (err instanceof k8s.ApiException) return `HTTP ${err.code}`;
  return (err as Error).message?.slice(0, 200) ?? String(err);
}
