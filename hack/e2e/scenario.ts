// The end-to-end scenario, the same on every provider (the local real node: hack/e2e/local.ts; kind:
// hack/e2e-kind.sh). It needs only kubectl and helm against a cluster whose node has the images
// svid-operator:e2e and svid-example:e2e, and throws with the reason at the first broken expectation.
//
//   1. helm install charts/svid-operator with the built image and the chart's own RBAC
//   2. WorkloadIdentities for server, client and stranger; the server Deployment, then (once the
//      server is Ready) the client Deployment calling it over mTLS every 500 ms
//   3. the stranger Job (valid SVID, SPIFFE ID not allowed) must get 403 on every request
//   4. the operator pod is deleted; its replacement takes the Lease and renews
//   5. the CA Secret is replaced; the rotation runs in phases: both roots in every bundle, every SVID
//      re-issued from the new CA, then the old CA leaves the bundles
//   6. the replacement operator pod runs at least 8 minutes with 0 restarts; /metrics scraped through
//      its Service from a pod
//   7. the client's log: every request answered 200, through several rotations of both SVIDs
import { X509Certificate } from 'node:crypto';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import * as m from './manifests.ts';
import { phaseTimer } from './phases.ts';
import { sleep, waitUntil } from './wait-until.ts';

export interface ScenarioEnv {
  kubectl(args: string[], input?: string): Promise<string>;
  helm(args: string[]): Promise<string>;
  chartDir: string;
  log(line: string): void;
  names?: m.ScenarioNames;
  /** How long the replacement operator pod must run without a restart (8 min). */
  operatorSoakMs?: number;
}

export interface ScenarioResult {
  requests: number;
  failed: number;
  rotationsSeen: { server: number; client: number };
  serverSerialsSeenByClient: number;
  strangerRefused: number;
  strangerAccepted: number;
  operatorRestarts: number;
  operatorRunSeconds: number;
  operatorTakeover: boolean;
  caRotationCompleted: boolean;
  metricsScraped: boolean;
  phaseSeconds: Record<string, number>;
}

const release = 'svid-operator';
const operatorSelector = 'app.kubernetes.io/name=svid-operator';
const pems = (pem: string) =>
  pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];

export async function runScenario(env: ScenarioEnv): Promise<ScenarioResult> {
  const n = env.names ?? m.defaultNames;
  const soakMs = env.operatorSoakMs ?? 8 * 60_000;
  const k = env.kubectl;
  const { phase, phaseSeconds } = phaseTimer(env.log);
  const json = async <T>(args: string[]) => JSON.parse(await k([...args, '-o', 'json'])) as T;
  const until = waitUntil('e2e');
  const serial = async (sa: string) =>
    (
      await k(['-n', n.appNamespace, 'get', 'workloadidentity', sa, '-o', 'jsonpath={.status.serialNumber}'])
    ).trim();
  const secretPem = async (sa: string, key: string) =>
    Buffer.from(
      (
        await k([
          '-n',
          n.appNamespace,
          'get',
          'secret',
          `${sa}-svid`,
          '-o',
          `jsonpath={.data.${key.replace('.', '\\.')}}`,
        ])
      ).trim(),
      'base64',
    ).toString();
  interface PodList {
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      status: {
        startTime?: string;
        conditions?: { type: string; status: string }[];
        containerStatuses?: { restartCount: number; state: { running?: { startedAt: string } } }[];
      };
    }[];
  }
  const operatorPods = async () =>
    (await json<PodList>(['-n', n.operatorNamespace, 'get', 'pods', '-l', operatorSelector])).items.filter(
      (p) => !p.metadata.deletionTimestamp,
    );
  const readyPod = (p: PodList['items'][number]) =>
    p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  /** Waits for a Job to complete or fail (kubectl wait for one condition would hang on the other). */
  const jobOutcome = async (name: string, timeoutMs: number) =>
    until(`job ${name} finished`, timeoutMs, async () => {
      const s = (
        await json<{ status: { succeeded?: number; failed?: number } }>([
          '-n',
          n.appNamespace,
          'get',
          'job',
          name,
        ])
      ).status;
      if (s.succeeded) return 'complete' as const;
      if (s.failed) return 'failed' as const;
      return undefined;
    });

  // Serials seen on the identities, sampled every 2 s for the whole run.
  const seen = { server: new Set<string>(), client: new Set<string>() };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const sa of ['server', 'client'] as const) {
        const s = await serial(sa).catch(() => '');
        if (s) seen[sa].add(s);
      }
      await sleep(2000);
    }
  })();

  try {
    await phase('install', async () => {
      await env.helm([
        'install',
        release,
        env.chartDir,
        '--namespace',
        n.operatorNamespace,
        '--create-namespace',
        '--set',
        'image.repository=svid-operator',
        '--set',
        'image.tag=e2e',
        '--set',
        'image.pullPolicy=Never',
        '--set',
        `trustDomain=${n.trustDomain}`,
        '--set',
        'minDuration=1m',
        '--set',
        // Well above kubelet's Secret sync here (syncFrequency 1s), so the rotation's phases stay short.
        'caPropagationDelay=30s',
        '--wait',
        '--timeout',
        '5m',
      ]);
    });

    await phase('identities', async () => {
      await k(['create', 'namespace', n.appNamespace]);
      await k(['apply', '-f', '-'], m.identities(n, ['server', 'client', 'stranger']));
      await k([
        '-n',
        n.appNamespace,
        'wait',
        '--for=condition=Ready',
        'workloadidentity/server',
        'workloadidentity/client',
        'workloadidentity/stranger',
        '--timeout=120s',
      ]);
    });

    await phase('server-then-client', async () => {
      await k(['apply', '-f', '-'], m.server(n));
      await k(['-n', n.appNamespace, 'rollout', 'status', 'deployment/server', '--timeout=180s']);
      await k(['apply', '-f', '-'], m.client(n));
      await k(['-n', n.appNamespace, 'rollout', 'status', 'deployment/client', '--timeout=180s']);
      await until('the first answer to the client', 60_000, async () =>
        / 200 /.test(await k(['-n', n.appNamespace, 'logs', 'deployment/client'])) ? true : undefined,
      );
    });

    let strangerRefused = 0;
    let strangerAccepted = 0;
    await phase('stranger', async () => {
      await k(['apply', '-f', '-'], m.stranger(n));
      const outcome = await jobOutcome('stranger', 120_000);
      const logs = await k(['-n', n.appNamespace, 'logs', 'job/stranger']);
      strangerRefused = logs.split('\n').filter((l) => /^\d+ 403 /.test(l)).length;
      strangerAccepted = logs.split('\n').filter((l) => /^\d+ 2\d\d /.test(l)).length;
      if (outcome !== 'failed' || strangerRefused !== 3 || strangerAccepted !== 0)
        throw new Error(`e2e: the stranger should get 403 three times and fail; it ${outcome}:\n${logs}`);
    });

    let operatorTakeover = false;
    const replacement = await phase('operator-failover', async () => {
      const [first] = await operatorPods();
      if (!first) throw new Error('e2e: no operator pod');
      await k(['-n', n.operatorNamespace, 'delete', 'pod', first.metadata.name, '--wait=false']);
      const next = await until('a Ready replacement operator pod', 180_000, async () => {
        const pods = await operatorPods();
        return pods.find((p) => p.metadata.name !== first.metadata.name && readyPod(p));
      });
      await until('the replacement holding the Lease', 120_000, async () => {
        const holder = (
          await k([
            '-n',
            n.operatorNamespace,
            'get',
            'lease',
            'svid-operator',
            '-o',
            'jsonpath={.spec.holderIdentity}',
          ])
        ).trim();
        return holder === next.metadata.name ? true : undefined;
      });
      // It does the work: an SVID renewed after the takeover.
      const before = await serial('server');
      await until('a renewal by the replacement', 150_000, async () =>
        (await serial('server')) !== before ? true : undefined,
      );
      operatorTakeover = true;
      return next.metadata.name;
    });

    let caRotationCompleted = false;
    await phase('ca-rotation', async () => {
      const ca = await createSelfSignedCa({ trustDomain: n.trustDomain });
      const caKey = new X509Certificate(ca.certPem).publicKey;
      const b64 = (s: string) => Buffer.from(s).toString('base64');
      await k(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          type: 'kubernetes.io/tls',
          metadata: { name: 'svid-operator-ca', namespace: n.operatorNamespace },
          data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem), 'ca.crt': b64(ca.certPem) },
        }),
      );
      for (const sa of ['server', 'client']) {
        await until(`${sa} re-issued from the new CA`, 180_000, async () => {
          const [leaf] = pems(await secretPem(sa, 'tls.crt'));
          return leaf && new X509Certificate(leaf).verify(caKey) ? true : undefined;
        });
      }
      // The old CA leaves the bundles once the last SVID it signed (2 min lifetimes) has expired, plus the
      // propagation delay (30 s).
      for (const sa of ['server', 'client']) {
        await until(`the old CA gone from ${sa}'s bundle`, 240_000, async () => {
          const bundle = pems(await secretPem(sa, 'ca.crt'));
          const [only] = bundle;
          return bundle.length === 1 && only && new X509Certificate(only).verify(caKey) ? true : undefined;
        });
      }
      caRotationCompleted = true;
    });

    const operator = await phase('operator-soak', async () => {
      // Fails fast on a restart rather than at the end.
      for (;;) {
        const pod = (await operatorPods()).find((p) => p.metadata.name === replacement);
        if (!pod) throw new Error(`e2e: the operator pod ${replacement} disappeared`);
        const c = pod.status.containerStatuses?.[0];
        const restarts = c?.restartCount ?? 0;
        if (restarts > 0) {
          const prev = await k([
            '-n',
            n.operatorNamespace,
            'logs',
            replacement,
            '--previous',
            '--tail=20',
          ]).catch(() => '');
          throw new Error(
            `e2e: the operator pod restarted ${restarts} time(s) (liveness?); previous log:\n${prev}`,
          );
        }
        const startedAt = Date.parse(c?.state.running?.startedAt ?? pod.status.startTime ?? '');
        const ran = Date.now() - startedAt;
        if (ran >= soakMs) return { restarts, runSeconds: Math.round(ran / 1000) };
        await sleep(Math.min(10_000, soakMs - ran + 500));
      }
    });

    let metricsScraped = false;
    await phase('metrics', async () => {
      await k(['apply', '-f', '-'], m.metricsScraper(n, `${release}-metrics`, 8080));
      const outcome = await jobOutcome('metrics', 120_000);
      const out = await k(['-n', n.appNamespace, 'logs', 'job/metrics']);
      if (
        outcome !== 'complete' ||
        !/^status 200$/m.test(out) ||
        !/^svid_operator_issuances_total/m.test(out)
      )
        throw new Error(`e2e: scraping /metrics through the Service ${outcome}:\n${out.slice(0, 2000)}`);
      metricsScraped = true;
    });

    sampling = false;
    await sampler;
    const result = await phase('client-log', async () => {
      for (const app of ['server', 'client']) {
        const pods = await json<PodList>(['-n', n.appNamespace, 'get', 'pods', '-l', `app=${app}`]);
        const restarts = pods.items.reduce(
          (s, p) => s + (p.status.containerStatuses?.[0]?.restartCount ?? 0),
          0,
        );
        if (restarts)
          throw new Error(
            `e2e: the ${app} pod restarted ${restarts} time(s); its requests are not all counted`,
          );
      }
      const lines = (await k(['-n', n.appNamespace, 'logs', 'deployment/client']))
        .split('\n')
        .filter((l) => /^\d+ /.test(l));
      const failedLines = lines.filter((l) => !/^\d+ 200 /.test(l));
      const serverSerials = new Set(
        lines.map((l) => /"serial":"([0-9a-fA-F]+)"/.exec(l)?.[1]).filter(Boolean),
      );
      const peers = new Set(lines.map((l) => /"peer":"([^"]+)"/.exec(l)?.[1]).filter(Boolean));
      if (failedLines.length)
        throw new Error(
          `e2e: ${failedLines.length} of ${lines.length} requests failed, e.g.:\n${failedLines.slice(0, 5).join('\n')}`,
        );
      if ([...peers].join() !== m.spiffeId(n, 'client'))
        throw new Error(`e2e: the server saw peers ${[...peers].join(', ')}`);
      const r: ScenarioResult = {
        requests: lines.length,
        failed: failedLines.length,
        rotationsSeen: { server: seen.server.size - 1, client: seen.client.size - 1 },
        serverSerialsSeenByClient: serverSerials.size,
        strangerRefused,
        strangerAccepted,
        operatorRestarts: operator.restarts,
        operatorRunSeconds: operator.runSeconds,
        operatorTakeover,
        caRotationCompleted,
        metricsScraped,
        phaseSeconds,
      };
      if (r.rotationsSeen.server < 3 || r.rotationsSeen.client < 3 || r.serverSerialsSeenByClient < 4)
        throw new Error(`e2e: too few rotations during the run: ${JSON.stringify(r)}`);
      return r;
    });
    return result;
  } catch (err) {
    env.log(`failed; diagnostics follow`);
    for (const args of [
      ['get', 'pods', '-A', '-o', 'wide'],
      ['get', 'events', '-A', '--sort-by=.lastTimestamp'],
      ['-n', n.operatorNamespace, 'logs', '-l', operatorSelector, '--tail=30'],
      ['-n', n.appNamespace, 'logs', 'deployment/client', '--tail=10'],
    ]) {
      env.log(`$ kubectl ${args.join(' ')}\n${await k(args).catch((e: Error) => e.message)}`);
    }
    throw err;
  } finally {
    sampling = false;
    await sampler;
  }
}

/** The output lines the issue asks for. */
export function summarize(r: ScenarioResult): string {
  return [
    `requests made: ${r.requests}`,
    `requests failed: ${r.failed}`,
    `rotations seen: server ${r.rotationsSeen.server}, client ${r.rotationsSeen.client} (server serials seen by the client: ${r.serverSerialsSeenByClient})`,
    `stranger refused: ${r.strangerRefused} (accepted: ${r.strangerAccepted})`,
    `operator restarts: ${r.operatorRestarts} (replacement ran ${r.operatorRunSeconds} s; took over after the delete: ${r.operatorTakeover})`,
    `CA rotation completed: ${r.caRotationCompleted}`,
    `metrics scraped through the Service: ${r.metricsScraped}`,
    `time per phase (s): ${Object.entries(r.phaseSeconds)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  ].join('\n');
}
