// What every phase of the cluster section shares: the control plane, the admin client, the bench's watch of
// the identities, the running operator (replaced on a restart), and how identities are named and created.
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../hack/lib/control-plane.ts';
import { createIdentity } from '../test/harness/identities.ts';
import type { OperatorProcess } from '../test/harness/operator-process.ts';
import { pool, type IdentityWatch } from './identity-watch.ts';

/** Creates go 16 at a time: as fast as the API server accepts, without a flood of sockets. */
export const CREATE_CONCURRENCY = 16;

export interface ClusterContext {
  cp: ControlPlane;
  /** The harness's admin client (exempt from API Priority and Fairness). */
  kc: k8s.KubeConfig;
  watch: IdentityWatch;
  /** The operator process now running. */
  op: OperatorProcess;
  /**
   * Replaces the operator with a fresh process, optionally with extra flags, or launched another way than
   * the image launches it (environment variables set over the image's, node flags instead of its own).
   */
  restartOperator(extraArgs?: string[], launch?: OperatorLaunchVariant): Promise<void>;
  log(line: string): void;
}

/** How a restarted operator is launched instead of as the image does (see bench/cluster.ts). */
export interface OperatorLaunchVariant {
  env?: Record<string, string>;
  nodeArgs?: string[];
}

export function identitySpec(name: string, extra: Record<string, unknown> = {}) {
  return { serviceAccountName: name, secretName: `${name}-svid`, ...extra };
}

export const names = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);

/** Creates `names` in `ns`, 16 at a time; when each create started and when the last one was answered. */
export async function createWave(
  kc: k8s.KubeConfig,
  ns: string,
  list: string[],
  extra: Record<string, unknown> = {},
): Promise<{ started: Map<string, number>; lastCreated: number }> {
  const started = new Map<string, number>();
  let lastCreated = 0;
  await pool(list, CREATE_CONCURRENCY, async (name) => {
    started.set(`${ns}/${name}`, performance.now());
    await createIdentity(kc, ns, name, identitySpec(name, extra));
    lastCreated = performance.now();
  });
  return { started, lastCreated };
}

/** The processes whose CPU the bench reports, by name. */
export function processPids(ctx: ClusterContext): Record<string, number> {
  const { pids } = ctx.cp.info();
  return {
    operator: ctx.op.pid ?? 0,
    'kube-apiserver': pids.apiServer,
    etcd: pids.etcd,
    ...(pids.controllerManager ? { 'kube-controller-manager': pids.controllerManager } : {}),
    'this script (creates, watch)': process.pid,
  };
}
