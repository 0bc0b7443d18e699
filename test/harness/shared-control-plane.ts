import * as k8s from '@kubernetes/client-node';
import type { KubeClient } from '../../src/kube/client.ts';
import { loadKubeClient } from '../../src/kube/load.ts';
import { ControlPlane } from '../../hack/lib/control-plane.ts';
import { installCrds } from '../../hack/lib/crds.ts';

let shared: Promise<ControlPlane> | undefined;

/**
 * One control plane for the whole test run, started by the first integration suite that asks for it
 * (unit-only runs never pay for it) with the CRDs from crds/ installed, and stopped by the global
 * teardown in test/setup/global.ts. With SVID_KEEP_CONTROL_PLANE=1 the teardown prints the kubeconfig
 * and keeps the control plane running until Ctrl-C, for poking at it with kubectl from another terminal.
 */
export function getControlPlane(): Promise<ControlPlane> {
  shared ??= (async () => {
    const cp = await ControlPlane.start();
    await installCrds(kubeConfig(cp));
    return cp;
  })();
  return shared;
}

export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const cp = await shared.catch(() => undefined);
  shared = undefined;
  if (!cp) return;
  if (process.env.SVID_KEEP_CONTROL_PLANE) {
    console.log(`\ncontrol plane kept running, Ctrl-C stops it:\nKUBECONFIG=${cp.kubeconfigPath}`);
    await new Promise((resolve) => process.once('SIGINT', resolve));
  }
  await cp.stop();
}

/** The operator's own client (src/kube) for the control plane's admin kubeconfig. */
export function kubeClient(cp: ControlPlane): Promise<KubeClient> {
  return loadKubeClient({ KUBECONFIG: cp.kubeconfigPath });
}

export function kubeConfig(cp: ControlPlane): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  return kc;
}
