// `npm run demo`: the whole product on a laptop, no cluster needed. It starts (or reuses) the local control
// plane, installs the CRD and a development CA, runs the operator, applies two WorkloadIdentities with short
// lifetimes, and prints each issuance and renewal as it happens, until Ctrl-C.
//
//   SVID_DEMO_SECONDS=N      stop after N seconds (the demo's own test uses it)
//   SVID_DEMO_KUBECONFIG=F   use this cluster instead of starting the local control plane
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { createSelfSignedCa } from '../src/pki/index.ts';
import { ensureBinaries } from './lib/binaries.ts';
import { clusterUp } from './cluster.ts';

const TRUST_DOMAIN = 'demo.svid.dev';
const SYSTEM_NS = 'svid-system';
const DEMO_NS = 'svid-demo';
const CA_SECRET = 'svid-demo-ca';
const IDENTITIES = [
  { name: 'frontend', duration: '30s', renewBefore: '10s' },
  { name: 'backend', duration: '45s', renewBefore: '15s' },
];

interface Identity {
  metadata: { name: string; namespace: string };
  status?: {
    spiffeID?: string;
    serialNumber?: string;
    notAfter?: string;
    renewalTime?: string;
    revision?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

const time = (iso: string | undefined) => (iso ? new Date(iso).toISOString().slice(11, 19) : '?');

async function ensureNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } }).catch((err: unknown) => {
    if (!(err instanceof k8s.ApiException) || err.code !== 409) throw err;
  });
}

async function main(): Promise<void> {
  const kubeconfig = process.env.SVID_DEMO_KUBECONFIG ?? (await clusterUp());
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  await ensureNamespace(core, SYSTEM_NS);
  await ensureNamespace(core, DEMO_NS);

  try {
    await core.readNamespacedSecret({ namespace: SYSTEM_NS, name: CA_SECRET });
    console.log(`demo: using the CA in ${SYSTEM_NS}/${CA_SECRET}`);
  } catch {
    const ca = await createSelfSignedCa({ trustDomain: TRUST_DOMAIN });
    await core.createNamespacedSecret({
      namespace: SYSTEM_NS,
      body: {
        metadata: { name: CA_SECRET },
        type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem },
      },
    });
    console.log(`demo: created a development CA in ${SYSTEM_NS}/${CA_SECRET}`);
  }

  const operator = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('../src/operator/main.ts', import.meta.url)),
      `--trust-domain=${TRUST_DOMAIN}`,
      `--ca-secret=${SYSTEM_NS}/${CA_SECRET}`,
      // The demo's identities live for seconds, so the lower bound is lowered from its 10m default.
      '--min-duration=10s',
      '--min-renew-before=5s',
      `--watch-namespace=${DEMO_NS}`,
      '--metrics-bind-address=127.0.0.1:0',
      '--health-probe-bind-address=127.0.0.1:0',
      '--log-level=warn',
    ],
    { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  console.log(`demo: operator started (pid ${operator.pid}), watching namespace ${DEMO_NS}`);

  for (const id of IDENTITIES) {
    const body = {
      apiVersion: 'identity.svid.dev/v1alpha1',
      kind: 'WorkloadIdentity',
      metadata: { name: id.name, namespace: DEMO_NS },
      spec: {
        serviceAccountName: id.name,
        secretName: `${id.name}-svid`,
        duration: id.duration,
        renewBefore: id.renewBefore,
        dnsNames: [id.name, `${id.name}.${DEMO_NS}.svc`],
      },
    };
    const base = {
      group: 'identity.svid.dev',
      version: 'v1alpha1',
      namespace: DEMO_NS,
      plural: 'workloadidentities',
    };
    await custom.deleteNamespacedCustomObject({ ...base, name: id.name }).catch(() => undefined);
    await custom.createNamespacedCustomObject({ ...base, body }).catch(async (err: unknown) => {
      // The previous run's object may still be going away.
      if (!(err instanceof k8s.ApiException) || err.code !== 409) throw err;
      await new Promise((r) => setTimeout(r, 1000));
      await custom.createNamespacedCustomObject({ ...base, body });
    });
    console.log(
      `demo: applied WorkloadIdentity ${DEMO_NS}/${id.name} (duration ${id.duration}, renewBefore ${id.renewBefore})`,
    );
  }

  const seen = new Map<string, string>();
  const watch = await new k8s.Watch(kc).watch(
    `/apis/identity.svid.dev/v1alpha1/namespaces/${DEMO_NS}/workloadidentities`,
    {},
    (_type: string, obj: Identity) => {
      const s = obj.status;
      const ready = s?.conditions?.find((c) => c.type === 'Ready');
      const key = `${obj.metadata.name}`;
      const state =
        ready?.status === 'True' ? `serial:${s?.serialNumber}` : `${ready?.reason}:${ready?.message}`;
      if (!ready || seen.get(key) === state) return;
      seen.set(key, state);
      const now = new Date().toISOString().slice(11, 19);
      if (ready.status === 'True') {
        const verb = (s?.revision ?? 1) > 1 ? 'renewed' : 'issued ';
        console.log(
          `[${now}] ${obj.metadata.name.padEnd(9)} ${verb} serial ${s?.serialNumber?.slice(0, 16)}…  ${s?.spiffeID}  expires ${time(s?.notAfter)}, renews ${time(s?.renewalTime)}  (revision ${s?.revision})`,
        );
      } else {
        console.log(`[${now}] ${obj.metadata.name.padEnd(9)} not ready: ${ready.reason}: ${ready.message}`);
      }
    },
    () => undefined,
  );

  const { kubectl } = await ensureBinaries();
  console.log(
    `\ndemo: watching issuance and renewal; Ctrl-C stops the demo. Meanwhile, in another terminal:`,
  );
  console.log(`  export KUBECONFIG=${kubeconfig}`);
  console.log(`  ${kubectl} get workloadidentities -n ${DEMO_NS}`);
  console.log(
    `  ${kubectl} get secret frontend-svid -n ${DEMO_NS} -o jsonpath='{.data.tls\\.crt}' | base64 -d | openssl x509 -noout -text\n`,
  );

  const seconds = Number(process.env.SVID_DEMO_SECONDS ?? 0);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (seconds > 0) setTimeout(resolve, seconds * 1000).unref();
  });
  watch.abort();
  operator.kill('SIGTERM');
  await once(operator, 'exit');
  console.log(
    '\ndemo: operator stopped. The control plane keeps running for kubectl; `npm run cluster:down` stops it.',
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
