import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa, issueSvid, loadCa } from '../../src/pki/index.ts';
import {
  createIdentity,
  createNamespace,
  putCaSecret,
  ready,
  until,
  getIdentity,
  waitReady,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'ca.example.org';

describe('operator with a missing or broken CA Secret', function () {
  this.timeout(3 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let op: OperatorProcess;
  const suffix = randomBytes(3).toString('hex');
  const ns = `ca-${suffix}`;
  const sys = `ca-sys-${suffix}`;
  const names = ['one', 'two'];

  const allSay = async (reason: string, text: string) => {
    for (const name of names) {
      await until(`${name}: ${reason} "${text}"`, 30_000, async () => {
        const c = ready(await getIdentity(kc, ns, name));
        return c?.reason === reason && c.message.includes(text) ? c : undefined;
      });
    }
  };

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      `--watch-namespace=${ns}`,
    ]);
    await op.start();
    for (const name of names)
      await createIdentity(kc, ns, name, { serviceAccountName: name, secretName: `${name}-svid` });
  });

  after(async () => {
    await op?.stop();
    expect(JSON.stringify(op?.logs ?? []) + (op?.stderr ?? '')).not.to.contain('PRIVATE KEY');
  });

  it('says on every identity that the CA Secret does not exist', async () => {
    await allSay('CAUnavailable', `the CA Secret ${sys}/ca does not exist`);
  });

  it('says the CA Secret is malformed, and keeps running', async () => {
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': 'garbage', 'tls.key': 'more garbage' });
    await allSay('CAUnavailable', 'tls.crt holds no PEM certificate');
    const ca = await createSelfSignedCa({ trustDomain: TD });
    const lines = ca.certPem.split('\n');
    await putCaSecret(kc, sys, 'ca', {
      'tls.crt': [...lines.slice(0, 3), ...lines.slice(-2)].join('\n'),
      'tls.key': ca.keyPem,
    });
    await allSay('CAUnavailable', 'is not valid DER');
    expect(op.pid).to.be.a('number');
  });

  it('says the CA certificate is not a CA', async () => {
    const realCa = await loadCa(await createSelfSignedCa({ trustDomain: TD }));
    const leaf = await issueSvid(realCa, { spiffeId: `spiffe://${TD}/ns/x/sa/y`, durationSeconds: 3600 });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': leaf.certChainPem, 'tls.key': leaf.keyPem });
    await allSay('CAUnavailable', 'is not a CA certificate');
  });

  it('recovers on its own when the CA is fixed', async () => {
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    for (const name of names) {
      const w = await waitReady(kc, ns, name);
      expect(w.status?.spiffeID).to.equal(`spiffe://${TD}/ns/${ns}/sa/${name}`);
    }
    expect(await op.metric('svid_operator_ca_expiry_timestamp_seconds')).to.be.greaterThan(Date.now() / 1000);
  });
});
