// Pod-certificate issuance throughput: `requests` PodCertificateRequests created the way the kubelet
// creates them (each by its node, with the node's client certificate, for a Pod bound to that node, with a
// stub PKCS#10 proof of possession of a fresh ECDSA P-256 key), 16 at a time like the WorkloadIdentity
// wave, answered by an operator process started with --pod-certificate-signer. Measured: time from each
// create call to the Issued condition seen through a watch (p50/p99), time from the last create until all
// were Issued, and the CPU seconds of the signing operator over the whole wave. The keys, proofs, nodes,
// pods and service accounts are made before the clock starts.
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../hack/lib/control-plane.ts';
import {
  OPT_IN_LABEL,
  OPT_IN_VALUE,
  PCR_GROUP,
  PCR_PLURAL,
  PCR_VERSION,
  SIGNER_NAME,
  outcomeOf,
  type PodCertificateRequest,
} from '../src/reconcilers/pod-certificate/types.ts';
import { asNode, createNode } from '../test/harness/pod-certificates.ts';
import { OperatorProcess } from '../test/harness/operator-process.ts';
import { podKeyPair, stubPkcs10 } from '../test/support/pod-requests.ts';
import { pool } from './identity-watch.ts';
import { cpuSeconds } from './proc.ts';
import { percentile } from './stats.ts';

export interface PodCertBenchResult {
  requests: number;
  p50Ms: number | null;
  p99Ms: number | null;
  allIssuedSeconds: number | null;
  operatorCpuSeconds: number | null;
}

export function emptyPodCertResult(requests: number): PodCertBenchResult {
  return { requests, p50Ms: null, p99Ms: null, allIssuedSeconds: null, operatorCpuSeconds: null };
}

export interface PodCertBenchOptions {
  /** A control plane started with `podCertificates: true` (the API, the Node authorizer, NodeRestriction). */
  cp: ControlPlane;
  /** Admin access to it. */
  kc: k8s.KubeConfig;
  requests: number;
  /** The operator's flags (trust domain, CA Secret, ...); the signer flags are added here. */
  operatorArgs: string[];
  operatorEnv?: NodeJS.ProcessEnv;
  operatorLaunch?: { script?: string; nodeArgs?: string[] };
  log: (line: string) => void;
}

const NS = 'podcert-bench';
const NODES = 4;
const SERVICE_ACCOUNTS = 10;
const CONCURRENCY = 16;

/**
 * Runs the wave against `cp` with its own operator process (started with the signer and watching for
 * WorkloadIdentities only in the bench's namespace, where there are none, so it does nothing else), and
 * stops that process again. Fills `result` as figures come in.
 */
export async function benchPodCertificates(
  o: PodCertBenchOptions,
  result: PodCertBenchResult,
): Promise<void> {
  const core = o.kc.makeApiClient(k8s.CoreV1Api);
  const n = o.requests;
  o.log(`pod certificates: preparing ${n} pods on ${NODES} nodes`);
  await core.createNamespace({
    body: { metadata: { name: NS, labels: { [OPT_IN_LABEL]: OPT_IN_VALUE } } },
  });
  const nodes: { name: string; uid: string; kc: k8s.KubeConfig }[] = [];
  for (let i = 0; i < NODES; i++) {
    const name = `bench-node-${i}`;
    nodes.push({ name, uid: await createNode(o.kc, name), kc: await asNode(o.cp, name) });
  }
  const sas: { name: string; uid: string }[] = [];
  for (let i = 0; i < SERVICE_ACCOUNTS; i++) {
    const sa = await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: `sa-${i}` }, automountServiceAccountToken: false },
    });
    sas.push({ name: `sa-${i}`, uid: sa.metadata?.uid ?? '' });
  }
  const pods: {
    name: string;
    uid: string;
    node: (typeof nodes)[number];
    sa: (typeof sas)[number];
    csr: string;
  }[] = [];
  await pool(
    Array.from({ length: n }, (_, i) => i),
    CONCURRENCY,
    async (i) => {
      const node = nodes[i % NODES] as (typeof nodes)[number];
      const sa = sas[i % SERVICE_ACCOUNTS] as (typeof sas)[number];
      const name = `pod-${String(i).padStart(5, '0')}`;
      const pod = await core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name },
          spec: {
            nodeName: node.name,
            serviceAccountName: sa.name,
            automountServiceAccountToken: false,
            containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
          },
        },
      });
      const { privateKey, publicKey } = podKeyPair('ECDSAP256');
      pods.push({
        name,
        uid: pod.metadata?.uid ?? '',
        node,
        sa,
        csr: stubPkcs10(privateKey, publicKey).toString('base64'),
      });
    },
  );

  const op = new OperatorProcess(
    o.cp.kubeconfigPath,
    [...o.operatorArgs, '--pod-certificate-signer=true', `--watch-namespace=${NS}`],
    o.operatorEnv,
    o.operatorLaunch,
  );
  const issuedAt = new Map<string, number>();
  let abortWatch: AbortController | undefined;
  try {
    await op.start();
    // Issued conditions as they arrive (a watch, as the kubelet's informer sees them).
    let allIssued: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allIssued = resolve));
    const problems: string[] = [];
    abortWatch = await new k8s.Watch(o.kc).watch(
      `/apis/${PCR_GROUP}/${PCR_VERSION}/namespaces/${NS}/${PCR_PLURAL}`,
      {},
      (_type: string, pcr: PodCertificateRequest) => {
        const outcome = outcomeOf(pcr);
        if (!outcome || issuedAt.has(pcr.metadata.name)) return;
        issuedAt.set(pcr.metadata.name, performance.now());
        if (outcome !== 'Issued') problems.push(`${pcr.metadata.name}: ${outcome}`);
        if (issuedAt.size === n) allIssued();
      },
      (err: unknown) => {
        if (err && issuedAt.size < n) problems.push(`watch ended: ${String(err)}`);
      },
    );
    const pid = op.pid ?? 0;
    const cpuBefore = await cpuSeconds(pid);
    const started = new Map<string, number>();
    const t0 = performance.now();
    let lastCreated = t0;
    o.log(`pod certificates: creating ${n} PodCertificateRequests, ${CONCURRENCY} at a time, as their nodes`);
    await pool(pods, CONCURRENCY, async (p) => {
      const at = performance.now();
      const created = (await p.node.kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
        group: PCR_GROUP,
        version: PCR_VERSION,
        namespace: NS,
        plural: PCR_PLURAL,
        body: {
          apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
          kind: 'PodCertificateRequest',
          metadata: {
            generateName: 'req-',
            ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: p.name, uid: p.uid }],
          },
          spec: {
            signerName: SIGNER_NAME,
            podName: p.name,
            podUID: p.uid,
            serviceAccountName: p.sa.name,
            serviceAccountUID: p.sa.uid,
            nodeName: p.node.name,
            nodeUID: p.node.uid,
            maxExpirationSeconds: 86400,
            stubPKCS10Request: p.csr,
          },
        },
      })) as PodCertificateRequest;
      started.set(created.metadata.name, at);
      lastCreated = performance.now();
    });
    o.log(
      `pod certificates: created ${n} in ${((lastCreated - t0) / 1000).toFixed(1)} s; waiting for Issued`,
    );
    const timeout = setTimeout(
      () => problems.push('not all Issued within 30 min') && allIssued(),
      30 * 60_000,
    );
    await done;
    clearTimeout(timeout);
    result.operatorCpuSeconds = (await cpuSeconds(pid)) - cpuBefore;
    if (problems.length) throw new Error(`pod certificates: ${problems.slice(0, 5).join('; ')}`);
    const latencies = [...started].map(([name, at]) => (issuedAt.get(name) ?? NaN) - at);
    result.p50Ms = percentile(latencies, 50);
    result.p99Ms = percentile(latencies, 99);
    result.allIssuedSeconds = (Math.max(...issuedAt.values()) - lastCreated) / 1000;
    o.log(`pod certificates: ${JSON.stringify(result)}`);
  } finally {
    abortWatch?.abort();
    await op.stop();
  }
}
