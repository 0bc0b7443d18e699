// The pod-certificate end-to-end scenario on a real node (issue 15, "Must show"): no WorkloadIdentity and no
// Secret holds a key. The chart installs the operator as the PodCertificateRequest signer
// identity.svid.dev/svid with --pod-certificate-refresh-after=10m (the earliest beginRefreshAt the API
// allows: notBefore + 10 min); a namespace opts in by label; pod A (server) and pod B (client) each mount a
// projected volume with a `podCertificate` source (ECDSAP256, credentialBundlePath) and a
// `clusterTrustBundle` source (signerName + labelSelector, as the README shows), and run the example server
// and client built on the library (openPodCertificateSource through --pod-certificate-dir). B calls A over
// mTLS every 500 ms while the kubelet refreshes both pods' certificates at least twice
// (beginRefreshAt + the kubelet's own 0-5 min jitter + its 1-2 min refresh pass: ~10-16 min per refresh).
//
// Checked: every request answered 200 (by the server, for the client's SPIFFE ID); each process reports
// at least three serials (two refreshes), every serial it reports is the leaf of an Issued
// PodCertificateRequest of its own pod; the issued leaves carry spiffe://<td>/ns/<ns>/sa/<sa> and chain to
// the root in the ClusterTrustBundle; neither pod restarted.
//
// `npm run e2e:pod-certificates` runs it on this machine (like `npm run e2e`);
// test/node/pod-certificates.e2e.test.ts runs it in npm test.
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { mainOnLocalNode, runOnLocalNode, type LocalNodeRun } from './local-node.ts';
import { phaseTimer } from './phases.ts';
import { sleep, waitUntil } from './wait-until.ts';

export interface PodCertScenarioEnv {
  kubectl(args: string[], input?: string): Promise<string>;
  helm(args: string[]): Promise<string>;
  chartDir: string;
  log(line: string): void;
  /** Kubelet refreshes each pod must go through (2). */
  refreshes?: number;
}

export interface PodCertScenarioResult {
  requests: number;
  failed: number;
  /** Kubelet refreshes each process saw (distinct serials it reported, minus the first). */
  refreshesSeen: { server: number; client: number };
  /** Issued PodCertificateRequests per pod (the first issuance and every refresh). */
  issuedPerPod: { server: number; client: number };
  serverSerialsSeenByClient: number;
  phaseSeconds: Record<string, number>;
}

const release = 'svid-operator';
const operatorNamespace = 'svid-system';
const ns = 'svid-podcert';
const trustDomain = 'e2e.svid.dev';
const exampleImage = 'svid-example:e2e';
const signerName = 'identity.svid.dev/svid';
const spiffeId = (sa: string) => `spiffe://${trustDomain}/ns/${ns}/sa/${sa}`;
const pems = (pem: string) =>
  pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];

/** A pod with the projected volume of the README's example, running the example `args`. */
function pod(name: string, args: string[], extra: object = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      serviceAccountName: name,
      automountServiceAccountToken: false,
      // A restart would lose the requests counted in its log: the scenario fails on one instead.
      restartPolicy: 'Never',
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name,
          image: exampleImage,
          imagePullPolicy: 'Never',
          args,
          volumeMounts: [{ name: 'svid', mountPath: '/var/run/svid', readOnly: true }],
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          ...extra,
        },
      ],
      volumes: [
        {
          name: 'svid',
          projected: {
            sources: [
              {
                podCertificate: {
                  signerName,
                  keyType: 'ECDSAP256',
                  maxExpirationSeconds: 3600,
                  credentialBundlePath: 'credentialbundle.pem',
                },
              },
              {
                clusterTrustBundle: {
                  signerName,
                  labelSelector: { matchLabels: { 'identity.svid.dev/trust-bundle': 'roots' } },
                  path: 'ca.crt',
                },
              },
            ],
          },
        },
      ],
    },
  };
}

function workloads(): { server: string; client: string } {
  const server = pod(
    'server',
    [
      'examples/server.js',
      '--pod-certificate-dir',
      '/var/run/svid',
      '--port',
      '8443',
      '--allow',
      spiffeId('client'),
    ],
    {
      ports: [{ containerPort: 8443 }],
      readinessProbe: { tcpSocket: { port: 8443 }, periodSeconds: 1 },
    },
  );
  const svc = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'server', namespace: ns },
    spec: { selector: { app: 'server' }, ports: [{ port: 8443, targetPort: 8443 }] },
  };
  const client = pod('client', [
    'examples/client.js',
    '--pod-certificate-dir',
    '/var/run/svid',
    '--url',
    `https://server.${ns}.svc:8443/`,
    '--server-id',
    spiffeId('server'),
    '--count',
    '1000000',
    '--interval-ms',
    '500',
    // Started right after the server: wait until kube-proxy routes its Service before the first request
    // (a first request before it once failed with ENETUNREACH to the ClusterIP).
    '--wait-reachable-ms',
    '60000',
  ]);
  return {
    server: [server, svc].map((d) => toYaml(d)).join('---\n'),
    client: toYaml(client),
  };
}

interface Pcr {
  metadata: { name: string };
  spec: { podName: string };
  status?: {
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    certificateChain?: string;
  };
}

/** Serials a process logged: `listening`/`started` and every `rotated` line (JSON lines of the examples). */
function serialsLogged(log: string): string[] {
  const out: string[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as { event?: string; serial?: string };
      if (e.serial && ['listening', 'started', 'rotated'].includes(e.event ?? '') && !out.includes(e.serial))
        out.push(e.serial);
    } catch {
      // not one of the examples' JSON lines
    }
  }
  return out;
}

export async function runPodCertScenario(env: PodCertScenarioEnv): Promise<PodCertScenarioResult> {
  const k = env.kubectl;
  const want = env.refreshes ?? 2;
  const { phase, phaseSeconds } = phaseTimer(env.log);
  const until = waitUntil('pod-certificate e2e');
  // Every Issued request seen, by name (kube-controller-manager may garbage-collect old ones).
  const issued = new Map<string, { pod: string; leaf: X509Certificate; chain: string[] }>();
  const pollRequests = async () => {
    const list = JSON.parse(await k(['-n', ns, 'get', 'podcertificaterequests', '-o', 'json'])) as {
      items: Pcr[];
    };
    for (const r of list.items) {
      const conds = r.status?.conditions ?? [];
      const bad = conds.find((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True');
      if (bad)
        throw new Error(
          `pod-certificate e2e: request ${r.metadata.name} for pod ${r.spec.podName} is ${bad.type} (${bad.reason}): ${bad.message}`,
        );
      if (issued.has(r.metadata.name) || !conds.some((c) => c.type === 'Issued' && c.status === 'True'))
        continue;
      const chain = pems(r.status?.certificateChain ?? '');
      const [leafPem] = chain;
      if (!leafPem)
        throw new Error(`pod-certificate e2e: request ${r.metadata.name} is Issued without a chain`);
      issued.set(r.metadata.name, { pod: r.spec.podName, leaf: new X509Certificate(leafPem), chain });
    }
  };
  const podState = async (name: string) => {
    const p = JSON.parse(await k(['-n', ns, 'get', 'pod', name, '-o', 'json'])) as {
      status: { phase: string; containerStatuses?: { restartCount: number }[] };
    };
    return { phase: p.status.phase, restarts: p.status.containerStatuses?.[0]?.restartCount ?? 0 };
  };
  const logs = (name: string) => k(['-n', ns, 'logs', `pod/${name}`]);
  const requestLines = (log: string) => log.split('\n').filter((l) => /^\d+ /.test(l));

  try {
    await phase('install', async () => {
      await env.helm([
        'install',
        release,
        env.chartDir,
        '--namespace',
        operatorNamespace,
        '--create-namespace',
        '--set',
        'image.repository=svid-operator',
        '--set',
        'image.tag=e2e',
        '--set',
        'image.pullPolicy=Never',
        '--set',
        `trustDomain=${trustDomain}`,
        '--set',
        'podCertificates.enabled=true',
        '--set',
        'podCertificates.duration=1h',
        '--set',
        'podCertificates.refreshAfter=10m',
        '--wait',
        '--timeout',
        '5m',
      ]);
    });

    let root: X509Certificate | undefined;
    await phase('opt-in-and-trust-bundle', async () => {
      await k(
        ['apply', '-f', '-'],
        [
          {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name: ns, labels: { 'identity.svid.dev/pod-certificates': 'enabled' } },
          },
          ...['server', 'client'].map((sa) => ({
            apiVersion: 'v1',
            kind: 'ServiceAccount',
            metadata: { name: sa, namespace: ns },
          })),
        ]
          .map((d) => toYaml(d))
          .join('---\n'),
      );
      // A clusterTrustBundle source without a matching bundle keeps the pod from starting: wait for it.
      const bundle = await until('the ClusterTrustBundle of the signer', 120_000, async () => {
        const pem = (
          await k([
            'get',
            'clustertrustbundle',
            'identity.svid.dev:svid:roots',
            '-o',
            'jsonpath={.spec.trustBundle}',
          ])
        ).trim();
        return pems(pem).length ? pems(pem) : undefined;
      });
      if (bundle.length !== 1)
        throw new Error(`pod-certificate e2e: expected one root, got ${bundle.length}`);
      root = new X509Certificate(bundle[0] as string);
    });

    const w = workloads();
    await phase('server-then-client', async () => {
      await k(['apply', '-f', '-'], w.server);
      await k(['-n', ns, 'wait', '--for=condition=Ready', 'pod/server', '--timeout=180s']);
      await k(['apply', '-f', '-'], w.client);
      await k(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=180s']);
      await until('the first answer to the client', 60_000, async () =>
        / 200 /.test(await logs('client')) ? true : undefined,
      );
    });

    const refreshes = await phase('kubelet-refreshes', async () => {
      // ~10-16 min per refresh (see the top of this file); fail at once on a failed request or a restart.
      const since = Date.now();
      const deadline = since + (want * 17 + 5) * 60_000;
      let lastProgress = '';
      for (;;) {
        await pollRequests();
        const seen = { server: 0, client: 0 };
        for (const name of ['server', 'client'] as const) {
          const s = await podState(name);
          if (s.phase !== 'Running' || s.restarts > 0)
            throw new Error(
              `pod-certificate e2e: pod ${name} is ${s.phase} with ${s.restarts} restart(s):\n${(await logs(name).catch((e: Error) => e.message)).slice(-2000)}`,
            );
          const log = await logs(name);
          seen[name] = serialsLogged(log).length - 1;
          if (name === 'client') {
            const failed = requestLines(log).filter((l) => !/^\d+ 200 /.test(l));
            if (failed.length)
              throw new Error(`pod-certificate e2e: failed requests:\n${failed.slice(0, 5).join('\n')}`);
          }
        }
        const progress = `refreshes seen: server ${seen.server}, client ${seen.client}; ${issued.size} requests issued`;
        if (progress !== lastProgress) env.log(`${progress} (${Math.round((Date.now() - since) / 1000)} s)`);
        lastProgress = progress;
        if (seen.server >= want && seen.client >= want) return seen;
        if (Date.now() > deadline)
          throw new Error(
            `pod-certificate e2e: after ${Math.round((Date.now() - since) / 1000)} s the processes saw only ${JSON.stringify(seen)} refreshes (want ${want} each); ${issued.size} requests issued`,
          );
        await sleep(10_000);
      }
    });

    return await phase('check', async () => {
      await pollRequests();
      const caKey = (root as X509Certificate).publicKey;
      const issuedPerPod = { server: 0, client: 0 };
      const leafSerials = { server: new Set<string>(), client: new Set<string>() };
      for (const [name, r] of issued) {
        if (r.pod !== 'server' && r.pod !== 'client') continue;
        issuedPerPod[r.pod]++;
        leafSerials[r.pod].add(r.leaf.serialNumber.toLowerCase());
        if (r.leaf.subjectAltName !== `URI:${spiffeId(r.pod)}`)
          throw new Error(`pod-certificate e2e: ${name} was issued for ${r.leaf.subjectAltName}`);
        // The chain (leaf, then any intermediates) leads to the root in the ClusterTrustBundle.
        const certs = r.chain.map((p) => new X509Certificate(p));
        const top = certs.at(-1) as X509Certificate;
        for (let i = 0; i + 1 < certs.length; i++)
          if (!(certs[i] as X509Certificate).verify((certs[i + 1] as X509Certificate).publicKey))
            throw new Error(`pod-certificate e2e: ${name}'s chain is broken at ${i}`);
        if (!top.verify(caKey))
          throw new Error(`pod-certificate e2e: ${name} does not chain to the published root`);
      }
      const serverLog = await logs('server');
      const clientLog = await logs('client');
      for (const [name, log] of [
        ['server', serverLog],
        ['client', clientLog],
      ] as const) {
        const unknown = serialsLogged(log).filter((s) => !leafSerials[name].has(s.toLowerCase()));
        if (unknown.length)
          throw new Error(
            `pod-certificate e2e: ${name} reported serials no Issued request of its pod holds: ${unknown.join(', ')} (issued: ${[...leafSerials[name]].join(', ')})`,
          );
      }
      const lines = requestLines(clientLog);
      const failed = lines.filter((l) => !/^\d+ 200 /.test(l));
      const peers = new Set(lines.map((l) => /"peer":"([^"]+)"/.exec(l)?.[1]).filter(Boolean));
      const serverSerials = new Set(
        lines.map((l) => /"serial":"([0-9a-fA-F]+)"/.exec(l)?.[1]).filter(Boolean),
      );
      if (failed.length)
        throw new Error(
          `pod-certificate e2e: ${failed.length} of ${lines.length} requests failed, e.g.:\n${failed.slice(0, 5).join('\n')}`,
        );
      if ([...peers].join() !== spiffeId('client'))
        throw new Error(`pod-certificate e2e: the server saw peers ${[...peers].join(', ')}`);
      return {
        requests: lines.length,
        failed: failed.length,
        refreshesSeen: refreshes,
        issuedPerPod,
        serverSerialsSeenByClient: serverSerials.size,
        phaseSeconds,
      };
    });
  } catch (err) {
    env.log('failed; diagnostics follow');
    for (const args of [
      ['get', 'pods', '-A', '-o', 'wide'],
      ['-n', ns, 'get', 'podcertificaterequests'],
      ['get', 'events', '-A', '--sort-by=.lastTimestamp'],
      ['-n', operatorNamespace, 'logs', '-l', 'app.kubernetes.io/name=svid-operator', '--tail=30'],
      ['-n', ns, 'logs', 'pod/server', '--tail=10'],
      ['-n', ns, 'logs', 'pod/client', '--tail=10'],
    ]) {
      env.log(`$ kubectl ${args.join(' ')}\n${await k(args).catch((e: Error) => e.message)}`);
    }
    throw err;
  }
}

export function summarizePodCert(r: PodCertScenarioResult): string {
  return [
    `requests made: ${r.requests}`,
    `requests failed: ${r.failed}`,
    `kubelet refreshes seen by the processes: server ${r.refreshesSeen.server}, client ${r.refreshesSeen.client} (server serials seen by the client: ${r.serverSerialsSeenByClient})`,
    `PodCertificateRequests issued: server ${r.issuedPerPod.server}, client ${r.issuedPerPod.client}`,
    `time per phase (s): ${Object.entries(r.phaseSeconds)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  ].join('\n');
}

export type LocalPodCertE2e = LocalNodeRun<PodCertScenarioResult>;

/**
 * Builds what it needs (cached), starts a node cluster with the pod-certificate gates, runs the scenario,
 * tears down. On a host that cannot run a node: skipped with the reason, or an error under CI=true.
 */
export function runLocalPodCertE2e(
  opts: { log?: (line: string) => void; refreshes?: number } = {},
): Promise<LocalPodCertE2e> {
  const log = opts.log ?? ((line: string) => console.error(`pod-certificate e2e: ${line}`));
  return runOnLocalNode({ log, podCertificates: true }, (tools) =>
    runPodCertScenario({ ...tools, log, refreshes: opts.refreshes }),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mainOnLocalNode('pod-certificate e2e', () => runLocalPodCertE2e(), summarizePodCert);
}
