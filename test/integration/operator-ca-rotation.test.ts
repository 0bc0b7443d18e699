import { expect } from 'chai';
import { randomBytes, X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import {
  createIdentity,
  createNamespace,
  putCaSecret,
  readSvidSecret,
  until,
  waitReady,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'rotate.example.org';
const roots = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (c) => new X509Certificate(c).fingerprint256,
  );

describe('CA rotation with an overlap', function () {
  this.timeout(3 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let op: OperatorProcess;
  const suffix = randomBytes(3).toString('hex');
  const ns = `rot-${suffix}`;
  const sys = `rot-sys-${suffix}`;
  const names = ['a', 'b', 'c'];

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
  });
  after(async () => {
    await op?.stop();
  });

  it('re-issues every SVID from the new CA, trusts both CAs during the overlap, then drops the old one', async () => {
    const oldCa = await createSelfSignedCa({ trustDomain: TD });
    const newCa = await createSelfSignedCa({ trustDomain: TD });
    const oldFp = new X509Certificate(oldCa.certPem).fingerprint256;
    const newFp = new X509Certificate(newCa.certPem).fingerprint256;
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': oldCa.certPem, 'tls.key': oldCa.keyPem });
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      `--watch-namespace=${ns}`,
      '--ca-overlap=15s',
    ]);
    await op.start();
    for (const n of names)
      await createIdentity(kc, ns, n, { serviceAccountName: n, secretName: `${n}-svid` });
    for (const n of names) await waitReady(kc, ns, n);
    const before = await readSvidSecret(kc, ns, 'a-svid');
    expect(roots(before.ca)).to.deep.equal([oldFp]);

    const rotatedAt = Date.now();
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': newCa.certPem, 'tls.key': newCa.keyPem });
    for (const n of names) {
      const s = await until(`${n} issued by the new CA`, 30_000, async () => {
        const cur = await readSvidSecret(kc, ns, `${n}-svid`);
        return cur.leaf.verify(new X509Certificate(newCa.certPem).publicKey) ? cur : undefined;
      });
      // During the overlap the bundle holds both, so an old-CA SVID still verifies against it.
      expect(roots(s.ca).sort()).to.deep.equal([oldFp, newFp].sort());
    }
    expect(before.leaf.verify(new X509Certificate(oldCa.certPem).publicKey)).to.equal(true);

    const after = await until('the old CA dropped from the bundles', 60_000, async () => {
      const cur = await readSvidSecret(kc, ns, 'a-svid');
      return roots(cur.ca).length === 1 ? cur : undefined;
    });
    expect(roots(after.ca)).to.deep.equal([newFp]);
    expect(Date.now() - rotatedAt).to.be.at.least(14_000);
    for (const n of names) {
      await until(`${n} bundle without the old CA`, 30_000, async () =>
        roots((await readSvidSecret(kc, ns, `${n}-svid`)).ca).length === 1 ? true : undefined,
      );
    }
  });
});
