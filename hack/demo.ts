// `npm run demo`: the whole product on a laptop, no cluster needed. It starts (or reuses) the local control
// plane, installs the CRD and a development CA, runs the operator, applies WorkloadIdentities for a server
// and a client with lifetimes of seconds, then runs the example server and client (examples/) reading
// their SVIDs from Secret volumes projected the way the kubelet projects them, and prints every issuance,
// every renewal and every request (caller and server SPIFFE IDs and serials) while the SVIDs rotate.
//
//   npm run demo                      processes on this machine, ~2 min, then cleans up
//   npm run demo -- --seconds 300     run longer (or shorter)
//   npm run demo -- --node            the server and client as pods on a real local node (root, cgroups;
//                                     the images and manifests of the end-to-end test)
//
//   SVID_DEMO_SECONDS=N      same as --seconds N
//   SVID_DEMO_KUBECONFIG=F   use this cluster instead of starting the local control plane (process mode)
//
// Exits 1 when a request failed.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { createSelfSignedCa } from '../src/pki/index.ts';
import { clusterUp } from './cluster.ts';
import { exec } from './e2e/exec.ts';
import * as manifests from './e2e/manifests.ts';
import { ensureBinaries, ensureNodeBinaries, runBuildScript } from './lib/binaries.ts';
import { freePort } from './lib/control-plane.ts';
import { installCrds } from './lib/crds.ts';
import { formatRequest, parseClientLine, RequestTally } from './lib/demo-requests.ts';
import { NodeCluster } from './lib/node-cluster.ts';
import { nodeHostSkipReason } from './lib/node-host.ts';
import { SecretProjector } from './lib/secret-projector.ts';

const TRUST_DOMAIN = 'demo.svid.dev';
const SYSTEM_NS = 'svid-system';
const DEMO_NS = 'svid-demo';
const CA_SECRET = 'svid-demo-ca';
// Lifetimes of seconds so that both SVIDs rotate several times in a two-minute demo (client every ~25 s,
// server every ~30 s); the operator's lower bounds are lowered for the demo below. renewBefore is at most
// half the duration (the CRD's rule) and above a fifth of the certificate's validity (duration + 60 s of
// backdating), where the library would warn that an SVID has not been rotated.
const IDENTITIES = [
  { name: 'server', duration: '60s', renewBefore: '30s' },
  { name: 'client', duration: '50s', renewBefore: '25s' },
] as const;
const spiffeId = (sa: string) => `spiffe://${TRUST_DOMAIN}/ns/${DEMO_NS}/sa/${sa}`;
const root = fileURLToPath(new URL('..', import.meta.url));

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

const clock = () => new Date().toISOString().slice(11, 19);
const time = (iso: string | undefined) => (iso ? new Date(iso).toISOString().slice(11, 19) : '?');
const say = (line: string) => console.log(`demo: ${line}`);
const event = (line: string) => console.log(`[${clock()}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const since = (t0: number) => `${Math.round((Date.now() - t0) / 1000)} s`;

async function ensureNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name } } }).catch((err: unknown) => {
    if (!(err instanceof k8s.ApiException) || err.code !== 409) throw err;
  });
}

/** The control plane (process mode): built on the first run, then reused. */
async function controlPlane(): Promise<string> {
  if (process.env.SVID_DEMO_KUBECONFIG) return process.env.SVID_DEMO_KUBECONFIG;
  say(
    'step 1: the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl, helm). ' +
      'The first run builds them from source through the Go module proxy (no release binaries are ' +
      'downloaded here): about 6 minutes on 2 idle cores, much longer on a busy machine; later runs ' +
      'reuse ~/.cache/svid-operator and take seconds.',
  );
  const t0 = Date.now();
  await ensureBinaries();
  say(`control-plane binaries ready after ${since(t0)}; starting (or reusing) the control plane`);
  const kubeconfig = await clusterUp();
  say(`control plane ready after ${since(t0)}`);
  return kubeconfig;
}

/** Starts the operator (a process on this machine in both modes) with the demo's short lifetimes allowed. */
function startOperator(kubeconfig: string): ChildProcess {
  const operator = spawn(
    process.execPath,
    [
      path.join(root, 'src/operator/main.ts'),
      `--trust-domain=${TRUST_DOMAIN}`,
      `--ca-secret=${SYSTEM_NS}/${CA_SECRET}`,
      // The demo's identities live for seconds, so the lower bounds are lowered from their defaults.
      '--min-duration=10s',
      '--min-renew-before=5s',
      `--watch-namespace=${DEMO_NS}`,
      '--metrics-bind-address=127.0.0.1:0',
      '--health-probe-bind-address=127.0.0.1:0',
      '--log-level=warn',
    ],
    { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  say(`operator started (pid ${operator.pid}), watching namespace ${DEMO_NS}`);
  return operator;
}

async function applyIdentities(kc: k8s.KubeConfig): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const base = {
    group: 'identity.svid.dev',
    version: 'v1alpha1',
    namespace: DEMO_NS,
    plural: 'workloadidentities',
  };
  for (const id of IDENTITIES) {
    // A previous run's identity and Secret go first, so nothing projects a stale SVID.
    await custom.deleteNamespacedCustomObject({ ...base, name: id.name }).catch(() => undefined);
    await core.deleteNamespacedSecret({ namespace: DEMO_NS, name: `${id.name}-svid` }).catch(() => undefined);
    await core
      .createNamespacedServiceAccount({ namespace: DEMO_NS, body: { metadata: { name: id.name } } })
      .catch((err: unknown) => {
        if (!(err instanceof k8s.ApiException) || err.code !== 409) throw err;
      });
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
    for (let attempt = 0; ; attempt++) {
      try {
        await custom.createNamespacedCustomObject({ ...base, body });
        break;
      } catch (err) {
        // The previous run's object may still be going away.
        if (!(err instanceof k8s.ApiException) || err.code !== 409 || attempt >= 30) throw err;
        await sleep(1000);
      }
    }
    say(
      `applied WorkloadIdentity ${DEMO_NS}/${id.name} (duration ${id.duration}, renewBefore ${id.renewBefore})`,
    );
  }
}

/** Prints each issuance and renewal (polls the identities' status once a second); returns a stop function. */
function showIssuance(kc: k8s.KubeConfig): { stop(): Promise<void>; ready(): Promise<void> } {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const seen = new Map<string, string>();
  let stopped = false;
  let resolveReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (resolveReady = r));
  const loop = (async () => {
    while (!stopped) {
      const list = (await custom
        .listNamespacedCustomObject({
          group: 'identity.svid.dev',
          version: 'v1alpha1',
          namespace: DEMO_NS,
          plural: 'workloadidentities',
        })
        .catch(() => undefined)) as { items: Identity[] } | undefined;
      for (const obj of list?.items ?? []) {
        const s = obj.status;
        const cond = s?.conditions?.find((c) => c.type === 'Ready');
        const state =
          cond?.status === 'True' ? `serial:${s?.serialNumber}` : `${cond?.reason}:${cond?.message}`;
        if (!cond || seen.get(obj.metadata.name) === state) continue;
        seen.set(obj.metadata.name, state);
        if (cond.status === 'True') {
          const verb = (s?.revision ?? 1) > 1 ? 'renewed' : 'issued ';
          event(
            `${obj.metadata.name.padEnd(7)} ${verb} serial ${s?.serialNumber?.toLowerCase().slice(0, 16)}…  ${s?.spiffeID}  expires ${time(s?.notAfter)}, renews ${time(s?.renewalTime)}  (revision ${s?.revision})`,
          );
        } else {
          event(`${obj.metadata.name.padEnd(7)} not ready: ${cond.reason}: ${cond.message}`);
        }
      }
      if (IDENTITIES.every((id) => seen.get(id.name)?.startsWith('serial:'))) resolveReady();
      await sleep(1000);
    }
  })();
  return {
    ready: () => ready,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Feeds the client's output lines through the tally and prints each request. */
function followClient(lines: NodeJS.ReadableStream, tally: RequestTally, serverId: string): Promise<void> {
  const rl = readline.createInterface({ input: lines });
  rl.on('line', (line) => {
    const r = parseClientLine(line);
    if (!r) return;
    event(formatRequest(r, serverId, tally.add(r)));
  });
  return once(rl, 'close').then(() => undefined);
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Resolves after `seconds`, or on Ctrl-C / SIGTERM. */
function runFor(seconds: number): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`${seconds} s are over`), seconds * 1000);
    const onSignal = (sig: string) => () => {
      clearTimeout(timer);
      resolve(`${sig} received`);
    };
    process.once('SIGINT', onSignal('SIGINT'));
    process.once('SIGTERM', onSignal('SIGTERM'));
  });
}

/** The example server and client as processes, their SVIDs in kubelet-style projected directories. */
async function runProcesses(kc: k8s.KubeConfig, seconds: number, tally: RequestTally): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const projectors: SecretProjector[] = [];
  let server: ChildProcess | undefined;
  let client: ChildProcess | undefined;
  try {
    for (const sa of ['server', 'client']) {
      const p = await SecretProjector.start(core, DEMO_NS, `${sa}-svid`, {
        onUpdate: (serial) =>
          event(
            `${sa.padEnd(7)} Secret changed: ${p.dir}/..data now points at a new directory (serial ${serial.slice(0, 16)}…)`,
          ),
        onError: (err) =>
          event(`${sa} Secret read failed (keeping the last content): ${(err as Error).message}`),
      });
      projectors.push(p);
      say(
        `projected Secret ${DEMO_NS}/${sa}-svid into ${p.dir} (..data → timestamped directory, like kubelet): serial ${p.serial.slice(0, 16)}…`,
      );
    }
    const [serverVol, clientVol] = projectors;
    if (!serverVol || !clientVol) throw new Error('the SVID volumes were not projected');
    const port = await freePort();
    const serverProcess = spawn(
      process.execPath,
      [
        path.join(root, 'examples/server.ts'),
        '--svid-dir',
        serverVol.dir,
        '--port',
        String(port),
        '--host',
        '127.0.0.1',
        '--allow',
        spiffeId('client'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    server = serverProcess;
    const listening = new Promise<void>((resolve, reject) => {
      serverProcess.once('exit', (code) => reject(new Error(`the example server exited with code ${code}`)));
      readline.createInterface({ input: serverProcess.stdout }).on('line', (line) => {
        let e: { event?: string; serial?: string; spiffeId?: string };
        try {
          e = JSON.parse(line) as typeof e;
        } catch {
          return;
        }
        if (e.event === 'listening') {
          event(
            `server  example server listening on 127.0.0.1:${port} as ${e.spiffeId}, allowing only ${spiffeId('client')}`,
          );
          resolve();
        } else if (e.event === 'rotated') {
          event(
            `server  example server picked up its new SVID, serial ${e.serial?.slice(0, 16)}… (no restart)`,
          );
        }
      });
    });
    await listening;
    // One request a second for the demo's length; the client verifies the server's SPIFFE ID.
    const clientProcess = spawn(
      process.execPath,
      [
        path.join(root, 'examples/client.ts'),
        '--svid-dir',
        clientVol.dir,
        '--url',
        `https://127.0.0.1:${port}/`,
        '--server-id',
        spiffeId('server'),
        '--count',
        String(seconds),
        '--interval-ms',
        '1000',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    say(`example client started: one request a second for ${seconds} s, as ${spiffeId('client')}`);
    client = clientProcess;
    const followed = followClient(clientProcess.stdout, tally, spiffeId('server'));
    const why = await Promise.race([
      runFor(seconds + 30),
      once(clientProcess, 'exit').then(() => 'the client made all its requests'),
    ]);
    say(`stopping: ${why}`);
    await stopChild(client);
    await followed;
  } finally {
    await stopChild(client);
    await stopChild(server);
    for (const p of projectors) await p.stop();
  }
}

/** The same example server and client as pods on a real local node (the e2e's images and manifests). */
async function runPods(kubeconfig: string, seconds: number, tally: RequestTally): Promise<void> {
  const { kubectl } = await ensureBinaries();
  const k = (args: string[], input?: string) => exec(kubectl, [`--kubeconfig=${kubeconfig}`, ...args], input);
  const names: manifests.ScenarioNames = {
    ...manifests.defaultNames,
    operatorNamespace: SYSTEM_NS,
    appNamespace: DEMO_NS,
    trustDomain: TRUST_DOMAIN,
  };
  await k(['apply', '-f', '-'], manifests.server(names));
  say('server Deployment applied; waiting until it is Ready (the client starts only then)');
  await k(['-n', DEMO_NS, 'rollout', 'status', 'deployment/server', '--timeout=180s']);
  await k(['apply', '-f', '-'], manifests.client(names));
  await k(['-n', DEMO_NS, 'rollout', 'status', 'deployment/client', '--timeout=180s']);
  say(`client pod running: two requests a second to https://server.${DEMO_NS}.svc:8443/ for ${seconds} s`);
  const logs = spawn(
    kubectl,
    [`--kubeconfig=${kubeconfig}`, '-n', DEMO_NS, 'logs', '-f', 'deployment/client'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const followed = followClient(logs.stdout, tally, spiffeId('server'));
  const why = await runFor(seconds);
  say(`stopping: ${why}`);
  await stopChild(logs);
  await followed;
  await k(['-n', DEMO_NS, 'delete', 'deployment', 'client', 'server', '--wait=false']).catch(() => '');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: process.env.SVID_DEMO_SECONDS ?? '120' },
      node: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run demo -- [--seconds N] [--node]');
    return 0;
  }
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 10 || seconds > 3600)
    throw new Error(`--seconds must be a whole number from 10 to 3600 (got ${values.seconds})`);

  let cluster: NodeCluster | undefined;
  let kubeconfig: string;
  if (values.node) {
    const reason = await nodeHostSkipReason();
    if (reason) {
      say(
        `--node cannot run on this host: ${reason}. Run \`npm run demo\` without --node for the same demo with processes.`,
      );
      return 2;
    }
    say(
      'step 1: the control plane, the node binaries (kubelet, containerd, runc, kube-proxy, CoreDNS) and ' +
        'the images (the Dockerfile, built with buildah). The first run builds all of them from source ' +
        'through the Go module proxy and a locally assembled base image, because no release binaries or ' +
        'registries are reachable here: roughly 6 + 7 + 3 minutes on 2 idle cores, far longer on a busy ' +
        'machine; later runs take seconds.',
    );
    const t0 = Date.now();
    await ensureBinaries();
    say(`control-plane binaries ready after ${since(t0)}`);
    await ensureNodeBinaries();
    say(`node binaries ready after ${since(t0)}`);
    const images = await runBuildScript('build-images.sh');
    say(`images ready after ${since(t0)}; starting a control plane and a node (about a minute)`);
    cluster = await NodeCluster.start({
      images: [path.join(images, 'operator.tar'), path.join(images, 'example.tar')],
      log: (line) => say(`node: ${line}`),
    });
    kubeconfig = cluster.kubeconfigPath;
    say(`node ${cluster.node.name} Ready after ${since(t0)}`);
  } else {
    kubeconfig = await controlPlane();
  }

  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  let operator: ChildProcess | undefined;
  let issuance: ReturnType<typeof showIssuance> | undefined;
  const tally = new RequestTally();
  try {
    if (cluster) await installCrds(kc);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await ensureNamespace(core, SYSTEM_NS);
    await ensureNamespace(core, DEMO_NS);
    try {
      await core.readNamespacedSecret({ namespace: SYSTEM_NS, name: CA_SECRET });
      say(`using the CA in ${SYSTEM_NS}/${CA_SECRET}`);
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
      say(`created a development CA in ${SYSTEM_NS}/${CA_SECRET}`);
    }
    operator = startOperator(kubeconfig);
    await applyIdentities(kc);
    issuance = showIssuance(kc);
    await Promise.race([
      issuance.ready(),
      sleep(120_000).then(() => {
        throw new Error('the identities were not issued within 120 s; the operator log above says why');
      }),
    ]);
    if (cluster) await runPods(kubeconfig, seconds, tally);
    else await runProcesses(kc, seconds, tally);
  } finally {
    await issuance?.stop();
    await stopChild(operator);
    if (cluster) {
      say('tearing down the node and the control plane (restores the host)');
      await cluster.stop();
    }
  }
  say(tally.summary());
  if (!cluster) {
    const { kubectl } = await ensureBinaries();
    say(
      `operator stopped. The control plane keeps running for kubectl; \`npm run cluster:down\` stops it:\n` +
        `  export KUBECONFIG=${kubeconfig}\n  ${kubectl} get workloadidentities -n ${DEMO_NS}`,
    );
  }
  if (tally.requests === 0) {
    say('FAILED: the client made no request');
    return 1;
  }
  if (tally.failed > 0) {
    say(`FAILED: ${tally.failed} of ${tally.requests} requests failed`);
    return 1;
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
