// Acting as a node towards a control plane started with `podCertificates: true`: Node and Pod objects, and
// PodCertificateRequests created with the node's client certificate, as the kubelet creates them
// (pkg/kubelet/podcertificate: generateName req-, owner reference to the pod, stub PKCS#10 proof).
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { nodeClientCertificate } from '../../hack/lib/node-client-cert.ts';
import {
  PCR_GROUP,
  PCR_PLURAL,
  PCR_VERSION,
  SIGNER_NAME,
  type PodCertificateRequest,
} from '../../src/podcert/types.ts';
import { pkixProof, podKeyPair, stubPkcs10, type PodKeyType } from '../support/pod-requests.ts';
import { until } from './identities.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A KubeConfig that authenticates as system:node:<nodeName>. */
export async function asNode(cp: ControlPlane, nodeName: string): Promise<k8s.KubeConfig> {
  const creds = await nodeClientCertificate(cp.dir, nodeName);
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: cp.apiServerUrl, caData: b64(creds.caPem), skipTLSVerify: false }],
    users: [{ name: nodeName, certData: b64(creds.certPem), keyData: b64(creds.keyPem) }],
    contexts: [{ name: 'node', cluster: 'local', user: nodeName }],
    currentContext: 'node',
  });
  return kc;
}

export async function createNode(kc: k8s.KubeConfig, name: string): Promise<string> {
  const node = await kc.makeApiClient(k8s.CoreV1Api).createNode({ body: { metadata: { name } } });
  return node.metadata?.uid ?? '';
}

export async function createServiceAccount(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<string> {
  const sa = await kc.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccount({
    namespace,
    body: { metadata: { name }, automountServiceAccountToken: false },
  });
  return sa.metadata?.uid ?? '';
}

/** A Pod bound to `nodeName` (as the scheduler would bind it); nothing runs it. */
export async function createPodOn(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  nodeName: string,
  serviceAccountName: string,
): Promise<string> {
  const pod = await kc.makeApiClient(k8s.CoreV1Api).createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        nodeName,
        serviceAccountName,
        automountServiceAccountToken: false,
        containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
      },
    },
  });
  return pod.metadata?.uid ?? '';
}

export interface PodRef {
  namespace: string;
  podName: string;
  podUID: string;
  serviceAccountName: string;
  serviceAccountUID: string;
  nodeName: string;
  nodeUID: string;
}

/** Creates a PodCertificateRequest as the kubelet would; returns it and the private key that stays "on the node". */
export async function createPcr(
  nodeKc: k8s.KubeConfig,
  ref: PodRef,
  opts: { keyType?: PodKeyType; proof?: 'stub' | 'pkix'; maxExpirationSeconds?: number } = {},
) {
  const { privateKey, publicKey } = podKeyPair(opts.keyType ?? 'ECDSAP256');
  const proof =
    (opts.proof ?? 'stub') === 'stub'
      ? { stubPKCS10Request: stubPkcs10(privateKey, publicKey).toString('base64') }
      : pkixProof(privateKey, publicKey, ref.podUID);
  const body: PodCertificateRequest & { metadata: { generateName?: string } } = {
    apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
    kind: 'PodCertificateRequest',
    metadata: {
      generateName: 'req-',
      namespace: ref.namespace,
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: ref.podName, uid: ref.podUID }],
    } as unknown as PodCertificateRequest['metadata'],
    spec: {
      signerName: SIGNER_NAME,
      podName: ref.podName,
      podUID: ref.podUID,
      serviceAccountName: ref.serviceAccountName,
      serviceAccountUID: ref.serviceAccountUID,
      nodeName: ref.nodeName,
      nodeUID: ref.nodeUID,
      maxExpirationSeconds: opts.maxExpirationSeconds ?? 86400,
      ...proof,
    },
  };
  // NodeRestriction reads the pod, node and service account from informers; right after they were created
  // it may not see them yet and answers with a retryable (non-403) error. The kubelet retries; so do we.
  const deadline = Date.now() + 15_000;
  let created: PodCertificateRequest;
  for (;;) {
    try {
      created = (await nodeKc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
        group: PCR_GROUP,
        version: PCR_VERSION,
        namespace: ref.namespace,
        plural: PCR_PLURAL,
        body,
      })) as PodCertificateRequest;
      break;
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 403 || code === 422 || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return { pcr: created, privateKey, publicKey };
}

export async function getPcr(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<PodCertificateRequest> {
  return (await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
    group: PCR_GROUP,
    version: PCR_VERSION,
    namespace,
    plural: PCR_PLURAL,
    name,
  })) as PodCertificateRequest;
}

/** Waits until the request has a terminal condition; returns it with that condition. */
export async function waitOutcome(kc: k8s.KubeConfig, pcr: PodCertificateRequest, timeoutMs = 30_000) {
  return until(
    `PodCertificateRequest ${pcr.metadata.namespace}/${pcr.metadata.name} answered`,
    timeoutMs,
    async () => {
      const now = await getPcr(kc, pcr.metadata.namespace, pcr.metadata.name);
      const c = now.status?.conditions?.[0];
      return c ? { pcr: now, condition: c } : undefined;
    },
  );
}
