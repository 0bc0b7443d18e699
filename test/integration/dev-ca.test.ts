import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { ensureDevCa } from '../../src/operator/dev-ca.ts';
import { loadCa, profile } from '../../src/pki/index.ts';
import { KeyUsageFlags } from '../../src/pki/x509.ts';
import { createNamespace, putCaSecret } from '../harness/identities.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { getControlPlane, kubeClient, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'dev-ca.example.org';

describe('development CA bootstrap (--bootstrap-dev-ca) against the real API server', function () {
  this.timeout(120_000);
  let core: k8s.CoreV1Api;
  let client: KubeClient;
  const ns = `dev-ca-${randomBytes(3).toString('hex')}`;
  const logs: string[] = [];
  const log = { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m) };

  before(async () => {
    const kc = kubeConfig(await getControlPlane());
    core = kc.makeApiClient(k8s.CoreV1Api);
    client = await kubeClient(await getControlPlane());
    await createNamespace(kc, ns);
  });

  const read = async (name: string) => {
    const s = await core.readNamespacedSecret({ name, namespace: ns });
    const text = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString();
    return { secret: s, certPem: text('tls.crt'), keyPem: text('tls.key'), bundlePem: text('ca.crt') };
  };

  it('creates one SPIFFE-profile root when replicas race, and never replaces it', async () => {
    const opts = { namespace: ns, name: 'ca', trustDomain: TD, validitySeconds: 30 * 86400, log };
    const outcomes = await Promise.all([
      ensureDevCa(client, opts),
      ensureDevCa(client, opts),
      ensureDevCa(client, opts),
    ]);
    expect(outcomes.filter((o) => o === 'created')).to.have.length(1);
    expect(outcomes.filter((o) => o === 'exists')).to.have.length(2);
    const first = await read('ca');
    expect(first.secret.type).to.equal('kubernetes.io/tls');
    const ca = await loadCa(first, { trustDomain: TD });
    const p = profile(ca.certificate);
    expect(ca.keySpec).to.deep.equal({ algorithm: 'ECDSA', size: 256 });
    expect([p.isCa, p.basicConstraintsCritical, p.keyUsageCritical]).to.deep.equal([true, true, true]);
    expect(p.keyUsage).to.equal(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign);
    expect(p.uris).to.deep.equal([`spiffe://${TD}`]);
    const days = (ca.notAfter.getTime() - Date.now()) / 86400_000;
    expect(days).to.be.within(29.9, 30.1);
    // A later start finds it and writes nothing.
    expect(await ensureDevCa(client, opts)).to.equal('exists');
    const again = await read('ca');
    expect(again.secret.metadata?.resourceVersion).to.equal(first.secret.metadata?.resourceVersion);
    expect(logs.filter((l) => l.includes('created a self-signed development CA'))).to.have.length(1);
    expect(logs.join('\n')).not.to.contain('PRIVATE KEY');
  });

  it('leaves an existing Secret alone, even one that is not a usable CA', async () => {
    await putCaSecret(kubeConfig(await getControlPlane()), ns, 'broken', {
      'tls.crt': 'garbage',
      'tls.key': 'x',
    });
    const before = await read('broken');
    const outcome = await ensureDevCa(client, {
      namespace: ns,
      name: 'broken',
      trustDomain: TD,
      validitySeconds: 86400,
      log,
    });
    expect(outcome).to.equal('exists');
    const after = await read('broken');
    expect(after.secret.metadata?.resourceVersion).to.equal(before.secret.metadata?.resourceVersion);
    expect(after.certPem).to.equal('garbage');
  });
});
