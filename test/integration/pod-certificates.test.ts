// The operator as the pod-certificate signer, on a real kube-apiserver with the PodCertificateRequest and
// ClusterTrustBundle APIs, the Node authorizer and NodeRestriction: requests are created as the node (its
// client certificate, for a Pod bound to it, with a proof of possession), answered by the operator, and the
// API server's own validation of the status write is part of what is tested.
import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { ControlPlane } from '../../hack/lib/control-plane.ts';
import { installCrds } from '../../hack/lib/crds.ts';
import { createSelfSignedCa, profile, svidConformance } from '../../src/pki/index.ts';
import {
  OPT_IN_LABEL,
  OPT_IN_VALUE,
  PCR_GROUP,
  PCR_VERSION,
} from '../../src/reconcilers/pod-certificate/types.ts';
import { CONFIGMAP_NAME, CTB_LABEL, CTB_NAME } from '../../src/trust/publisher.ts';
import { parseSpiffeBundle } from '../../src/trust/spiffe-bundle.ts';
import { PHASE_LABEL, rotationSecretName, STATE_ANNOTATION } from '../../src/rotation/record.ts';
import { renderChart, serviceAccountKubeconfig } from '../harness/chart.ts';
import { putCaSecret, until } from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import {
  asNode,
  createNode,
  createPcr,
  createPodOn,
  createServiceAccount,
  waitOutcome,
  type PodRef,
} from '../harness/pod-certificates.ts';
import { kubeConfig } from '../harness/shared-control-plane.ts';
import { openssl } from '../support/pki-fixtures.ts';
import type { PodKeyType } from '../support/pod-requests.ts';

const TD = 'pods.example.org';

/** The message of an API server Status error. */
function messageOf(err: k8s.ApiException<string> | undefined): string {
  return (JSON.parse(String(err?.body)) as { message: string }).message;
}

/** The YAML blocks of the README's "Pod certificates" section. */
async function readmeYaml(): Promise<string[]> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Pod certificates\n');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

describe('pod certificates: the operator as signer identity.svid.dev/svid', function () {
  this.timeout(4 * 60_000);
  let cp: ControlPlane;
  let admin: k8s.KubeConfig;
  let nodeA: k8s.KubeConfig;
  let nodeB: k8s.KubeConfig;
  let op: OperatorProcess;
  let sa: k8s.KubeConfig;
  const suffix = randomBytes(3).toString('hex');
  const sys = `svid-system-${suffix}`;
  const apps = `apps-${suffix}`;
  const closed = `closed-${suffix}`;
  const nodeUid: Record<string, string> = {};
  let caPem = '';
  let tmp = '';

  const core = () => admin.makeApiClient(k8s.CoreV1Api);
  async function podIn(namespace: string, name: string, nodeName: string): Promise<PodRef> {
    const sa = `${name}-sa`;
    const serviceAccountUID = await createServiceAccount(admin, namespace, sa);
    const podUID = await createPodOn(admin, namespace, name, nodeName, sa);
    return {
      namespace,
      podName: name,
      podUID,
      serviceAccountName: sa,
      serviceAccountUID,
      nodeName,
      nodeUID: nodeUid[nodeName] ?? '',
    };
  }
  const rootOf = (pem: string) => new X509Certificate(pem);
  const ctb = async () =>
    (await admin.makeApiClient(k8s.CustomObjectsApi).getClusterCustomObject({
      group: PCR_GROUP,
      version: PCR_VERSION,
      plural: 'clustertrustbundles',
      name: CTB_NAME,
    })) as {
      metadata: { labels?: Record<string, string> };
      spec: { signerName: string; trustBundle: string };
    };
  const configMap = () => core().readNamespacedConfigMap({ namespace: apps, name: CONFIGMAP_NAME });

  before(async () => {
    cp = await ControlPlane.start({ podCertificates: true, controllerManager: false });
    admin = kubeConfig(cp);
    for (const ns of [sys, closed]) await core().createNamespace({ body: { metadata: { name: ns } } });
    await core().createNamespace({
      body: { metadata: { name: apps, labels: { [OPT_IN_LABEL]: OPT_IN_VALUE } } },
    });
    for (const n of ['node-a', 'node-b']) nodeUid[n] = await createNode(admin, n);
    nodeA = await asNode(cp, 'node-a');
    nodeB = await asNode(cp, 'node-b');
    const ca = await createSelfSignedCa({ trustDomain: TD });
    caPem = ca.certPem;
    await putCaSecret(admin, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    // The operator runs as the chart's ServiceAccount with exactly the chart's RBAC for pod certificates.
    await installCrds(admin);
    const rbac = (
      await renderChart(sys, {
        'podCertificates.enabled': 'true',
        'ca.bootstrap': 'false',
        'ca.secretName': 'ca',
      })
    ).filter((o) =>
      ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind),
    );
    expect(rbac.map((o) => `${o.kind}/${o.metadata.name}`)).to.include(
      'ClusterRole/svid-operator-pod-certificates',
    );
    await cp.kubectlRun(['apply', '-n', sys, '-f', '-'], rbac.map((o) => toYaml(o)).join('---\n'));
    tmp = await mkdtemp(path.join(os.tmpdir(), 'svid-podcert-'));
    const saKubeconfig = path.join(tmp, 'sa.kubeconfig');
    sa = await serviceAccountKubeconfig(cp, admin, sys, 'svid-operator', saKubeconfig);
    op = new OperatorProcess(saKubeconfig, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      `--watch-namespace=${sys}`,
      `--leader-elect=true`,
      `--leader-election-namespace=${sys}`,
      '--pod-certificate-signer=true',
      '--pod-certificate-duration=2h',
      '--ca-propagation-delay=4s',
    ]);
    await op.start();
  });

  after(async () => {
    await op?.stop();
    const everything = JSON.stringify(op?.logs ?? []) + (op?.stderr ?? '');
    expect(everything).not.to.contain('PRIVATE KEY');
    await cp?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const keyTypes: { keyType: PodKeyType; proof: 'stub' | 'pkix' }[] = [
    { keyType: 'ECDSAP256', proof: 'stub' },
    { keyType: 'ECDSAP384', proof: 'stub' },
    { keyType: 'ED25519', proof: 'pkix' },
    { keyType: 'RSA3072', proof: 'stub' },
    // The deprecated pkixPublicKey field with an RSA-PSS proof of possession.
    { keyType: 'RSA4096', proof: 'pkix' },
  ];
  for (const [i, { keyType, proof }] of keyTypes.entries()) {
    it(`issues an X.509-SVID for a ${keyType} request created as the node (${proof} proof of possession)`, async () => {
      const ref = await podIn(apps, `web-${i}`, 'node-a');
      const { pcr, privateKey } = await createPcr(nodeA, ref, {
        keyType,
        proof,
        maxExpirationSeconds: 86400,
      });
      const { pcr: done, condition } = await waitOutcome(admin, pcr);
      expect(condition).to.include({ type: 'Issued', status: 'True', reason: 'Issued' });
      const status = done.status ?? {};
      const chain = status.certificateChain ?? '';
      const leaf = new X509Certificate(chain);
      const id = `spiffe://${TD}/ns/${apps}/sa/${ref.serviceAccountName}`;
      // go-spiffe's X.509-SVID rules: one URI SAN that is the SPIFFE ID, a leaf, right key usages.
      for (const check of svidConformance(leaf))
        expect(check.ok, `${check.name}: ${check.detail}`).to.equal(true);
      expect(profile(leaf).uris).to.deep.equal([id]);
      expect(leaf.checkPrivateKey(privateKey)).to.equal(true);
      // Lifetime min(maxExpirationSeconds 24h, --pod-certificate-duration 2h); the status matches the leaf.
      const nb = new Date(status.notBefore ?? '').getTime();
      const na = new Date(status.notAfter ?? '').getTime();
      expect(na - nb).to.equal(2 * 3600_000);
      expect(nb).to.equal(new Date(leaf.validFromDate).getTime());
      expect(na).to.equal(new Date(leaf.validToDate).getTime());
      const refresh = new Date(status.beginRefreshAt ?? '').getTime();
      expect(refresh).to.be.within(
        na - (2 * 3600_000) / 3 - 5 * 60_000 - 1000,
        na - (2 * 3600_000) / 3 + 1000,
      );
      const verify = await openssl(['verify', '-CAfile', 'ca.crt', '-purpose', 'sslclient', 'leaf.pem'], {
        'ca.crt': caPem,
        'leaf.pem': chain,
      });
      await verify.cleanup();
      expect(verify.output).to.contain('leaf.pem: OK');
      expect(verify.code).to.equal(0);
    });
  }

  it("accepts the README's Pod with podCertificate and clusterTrustBundle sources (server dry run)", async () => {
    const [pod] = (await readmeYaml()).filter((b) => b.includes('kind: Pod'));
    if (!pod) throw new Error('README "Pod certificates" has no Pod block');
    await createServiceAccount(admin, apps, 'payments');
    const out = await cp.kubectlRun(
      ['create', '--dry-run=server', '-f', '-', '-o', 'name'],
      pod.replace('namespace: shop', `namespace: ${apps}`),
    );
    expect(out.trim()).to.equal('pod/payments');
  });

  it("refuses, in the API server, a node's request for another node's pod", async () => {
    const ref = await podIn(apps, 'on-a', 'node-a');
    // node-b claims to be node-a: refused by NodeRestriction.
    const impersonated = await createPcr(nodeB, ref).then(
      () => undefined,
      (err: unknown) => err as k8s.ApiException<string>,
    );
    expect(impersonated?.code).to.equal(403);
    expect(messageOf(impersonated)).to.contain(
      'PodCertificateRequest.Spec.NodeName="node-a", which is not the requesting node "node-b"',
    );
    // node-b names itself, but the pod is bound to node-a.
    const foreign = await createPcr(nodeB, {
      ...ref,
      nodeName: 'node-b',
      nodeUID: nodeUid['node-b'] ?? '',
    }).then(
      () => undefined,
      (err: unknown) => err as k8s.ApiException<string>,
    );
    expect(foreign?.code).to.equal(403);
    expect(messageOf(foreign)).to.contain(`pod "${apps}/on-a" is not running on node "node-b"`);
  });

  it('denies a request from a namespace that did not opt in, saying how to opt in', async () => {
    const ref = await podIn(closed, 'shut', 'node-a');
    const { pcr } = await createPcr(nodeA, ref);
    const { pcr: done, condition } = await waitOutcome(admin, pcr);
    expect(condition).to.include({ type: 'Denied', status: 'True', reason: 'NamespaceNotOptedIn' });
    expect(condition.message).to.contain(`kubectl label namespace ${closed} ${OPT_IN_LABEL}=${OPT_IN_VALUE}`);
    expect(done.status?.certificateChain).to.equal(undefined);
    await until('a Denied event on the request', 10_000, async () => {
      const list = await core().listNamespacedEvent({ namespace: closed });
      return list.items.find((e) => e.involvedObject.name === pcr.metadata.name && e.reason === 'Denied');
    });
  });

  it('publishes the trust bundle as a ClusterTrustBundle and in the opted-in namespace only', async () => {
    const bundle = await until('ClusterTrustBundle', 20_000, () => ctb().catch(() => undefined));
    expect(bundle.spec.signerName).to.equal('identity.svid.dev/svid');
    expect(bundle.metadata.labels?.[CTB_LABEL]).to.equal('roots');
    expect(rootOf(bundle.spec.trustBundle).fingerprint256).to.equal(rootOf(caPem).fingerprint256);
    const cm = await until('ConfigMap', 20_000, () => configMap().catch(() => undefined));
    expect(cm.data?.['ca.crt']).to.equal(bundle.spec.trustBundle);
    const parsed = parseSpiffeBundle(cm.data?.['bundle.spiffe'] ?? '');
    if (!('bundle' in parsed)) throw new Error(parsed.problem);
    expect(parsed.bundle.keys).to.have.length(1);
    const closedCm = await core()
      .readNamespacedConfigMap({ namespace: closed, name: CONFIGMAP_NAME })
      .catch((err: unknown) => (err as k8s.ApiException<string>).code);
    expect(closedCm).to.equal(404);
  });

  it('follows a CA rotation in phases: old + new roots first, then signing by the new CA while the old root stays until the pod certificates it signed have expired; the sequence increases', async () => {
    const before = parseSpiffeBundle((await configMap()).data?.['bundle.spiffe'] ?? '');
    if (!('bundle' in before)) throw new Error(before.problem);
    const next = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(admin, sys, 'ca', { 'tls.crt': next.certPem, 'tls.key': next.keyPem });
    const fp = (pem: string) => rootOf(pem).fingerprint256;
    const fps = (text: string) =>
      text
        .split(/(?=-----BEGIN CERTIFICATE-----)/)
        .filter((c) => c.includes('BEGIN'))
        .map(fp)
        .sort();
    const both = [fp(caPem), fp(next.certPem)].sort();
    const overlap = await until('both roots published', 20_000, async () => {
      const [b, cm] = [await ctb(), await configMap()];
      return JSON.stringify(fps(b.spec.trustBundle)) === JSON.stringify(both) &&
        JSON.stringify(fps(cm.data?.['ca.crt'] ?? '')) === JSON.stringify(both)
        ? cm
        : undefined;
    });
    const during = parseSpiffeBundle(overlap.data?.['bundle.spiffe'] ?? '');
    if (!('bundle' in during)) throw new Error(during.problem);
    expect(during.bundle.keys).to.have.length(2);
    expect(during.bundle.spiffe_sequence).to.be.greaterThan(before.bundle.spiffe_sequence);
    // A request during the overlap is issued by one of the CAs every bundle trusts.
    const ref = await podIn(apps, 'rotated', 'node-a');
    const { pcr } = await createPcr(nodeA, ref);
    const { condition, pcr: done } = await waitOutcome(admin, pcr);
    expect(condition.type).to.equal('Issued');
    const leaf = new X509Certificate(done.status?.certificateChain ?? '');
    expect([caPem, next.certPem].some((r) => leaf.verify(rootOf(r).publicKey))).to.equal(true);
    // After the propagation delay signing switches to the new CA. No Secret holds an old SVID here, but pod
    // certificates the old CA signed live up to --pod-certificate-duration (2h) in their pods: the old root
    // stays in every bundle until then, plus the delay.
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const state = await until('the rotation Retiring', 30_000, async () => {
      const s = await core.readNamespacedSecret({ name: rotationSecretName('ca'), namespace: sys });
      return s.metadata?.labels?.[PHASE_LABEL] === 'Retiring' ? s : undefined;
    });
    const recorded = JSON.parse(state.metadata?.annotations?.[STATE_ANNOTATION] ?? '{}') as {
      since: string;
      retireAt: string;
    };
    expect(Date.parse(recorded.retireAt) - Date.parse(recorded.since)).to.be.at.least(2 * 3600_000);
    const ref2 = await podIn(apps, 'rotated-after', 'node-a');
    const { pcr: pcr2 } = await createPcr(nodeA, ref2);
    const { condition: c2, pcr: done2 } = await waitOutcome(admin, pcr2);
    expect(c2.type).to.equal('Issued');
    const leaf2 = new X509Certificate(done2.status?.certificateChain ?? '');
    expect(leaf2.verify(rootOf(next.certPem).publicKey)).to.equal(true);
    const [b, cm] = [await ctb(), await configMap()];
    expect(fps(b.spec.trustBundle)).to.deep.equal(both);
    expect(fps(cm.data?.['ca.crt'] ?? '')).to.deep.equal(both);
    caPem = next.certPem;
  });

  it("gives the operator's ServiceAccount nothing beyond what the signer needs", async () => {
    const refused = (p: Promise<unknown>) =>
      p.then(
        () => 'allowed',
        (err: unknown) => (err as { code?: number }).code,
      );
    const custom = sa.makeApiClient(k8s.CustomObjectsApi);
    const saCore = sa.makeApiClient(k8s.CoreV1Api);
    const pcrs = {
      group: PCR_GROUP,
      version: PCR_VERSION,
      namespace: apps,
      plural: 'podcertificaterequests',
    };
    // No creating or deleting requests (only nodes create them), no reading other ConfigMaps.
    expect(await refused(custom.deleteCollectionNamespacedCustomObject(pcrs))).to.equal(403);
    expect(
      await refused(
        custom.createNamespacedCustomObject({
          ...pcrs,
          body: {
            apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
            kind: 'PodCertificateRequest',
            metadata: { name: 'x' },
          },
        }),
      ),
    ).to.equal(403);
    expect(
      await refused(saCore.readNamespacedConfigMap({ namespace: apps, name: 'kube-root-ca.crt' })),
    ).to.equal(403);
    expect(
      await refused(saCore.deleteNamespacedConfigMap({ namespace: apps, name: CONFIGMAP_NAME })),
    ).to.equal(403);
    // No ClusterTrustBundle for another signer (attest is granted for identity.svid.dev/svid only).
    const other = await createSelfSignedCa({ trustDomain: 'other.example' });
    expect(
      await refused(
        custom.createClusterCustomObject({
          group: PCR_GROUP,
          version: PCR_VERSION,
          plural: 'clustertrustbundles',
          body: {
            apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
            kind: 'ClusterTrustBundle',
            metadata: { name: 'example.com:other:roots' },
            spec: { signerName: 'example.com/other', trustBundle: other.certPem },
          },
        }),
      ),
    ).to.equal(403);
    expect(
      await refused(
        custom.deleteClusterCustomObject({
          group: PCR_GROUP,
          version: PCR_VERSION,
          plural: 'clustertrustbundles',
          name: CTB_NAME,
        }),
      ),
    ).to.equal(403);
  });

  it('fails requests while the CA is broken (after the grace period) and issues again once it is fixed', async () => {
    const good = await core().readNamespacedSecret({ namespace: sys, name: 'ca' });
    await putCaSecret(admin, sys, 'ca', { 'tls.crt': 'garbage', 'tls.key': 'garbage' });
    const ref = await podIn(apps, 'while-broken', 'node-a');
    const { pcr } = await createPcr(nodeA, ref);
    const { pcr: done, condition } = await waitOutcome(admin, pcr, 90_000);
    expect(condition).to.include({ type: 'Failed', status: 'True', reason: 'CAUnavailable' });
    expect(condition.message).to.contain(`the CA Secret ${sys}/ca is unusable`);
    expect(done.status?.certificateChain).to.equal(undefined);
    const data = good.data ?? {};
    await putCaSecret(admin, sys, 'ca', {
      'tls.crt': Buffer.from(data['tls.crt'] ?? '', 'base64').toString(),
      'tls.key': Buffer.from(data['tls.key'] ?? '', 'base64').toString(),
    });
    const again = await podIn(apps, 'after-fix', 'node-a');
    const { pcr: second } = await createPcr(nodeA, again);
    const { condition: issued } = await waitOutcome(admin, second, 30_000);
    expect(issued.type).to.equal('Issued');
    expect(await op.metric('svid_operator_pod_certificate_requests_total', { outcome: 'Failed' })).to.equal(
      1,
    );
    expect(await op.metric('svid_operator_pod_certificate_requests_total', { outcome: 'Denied' })).to.equal(
      1,
    );
    // One per key type, two in the CA rotation test, and the one after the fix.
    expect(await op.metric('svid_operator_pod_certificate_requests_total', { outcome: 'Issued' })).to.equal(
      keyTypes.length + 3,
    );
  });
});
