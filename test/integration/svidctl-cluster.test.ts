import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  putCaSecret,
  until,
  waitReady,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const bin = fileURLToPath(new URL('../../bin/svidctl.js', import.meta.url));
const TD = 'ctl.example.org';

describe('svidctl status and renew against the real API server', function () {
  this.timeout(5 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let op: OperatorProcess;
  const suffix = randomBytes(3).toString('hex');
  const ns = `ctl-${suffix}`;
  const sys = `ctl-sys-${suffix}`;

  const svidctl = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [bin, ...args, '--kubeconfig', cp.kubeconfigPath], (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    for (const n of [ns, sys]) await createNamespace(kc, n);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      '--min-duration=10s',
      `--watch-namespace=${ns}`,
    ]);
    await op.start();
    await createIdentity(kc, ns, 'payments', { serviceAccountName: 'payments', secretName: 'payments-svid' });
  });

  after(async () => {
    await op?.stop();
  });

  it("status shows the identity's SVID, renewal, Ready condition, Secret and last events", async () => {
    const w = await waitReady(kc, ns, 'payments');
    // The Issued event is sent in the background; wait until the API server has it.
    const res = await until('status shows the Issued event', 60_000, async () => {
      const r = await svidctl(['status', 'payments', '-n', ns]);
      return r.stdout.includes('Normal  Issued') ? r : undefined;
    });
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.contain(`Name:          ${ns}/payments`);
    expect(res.stdout).to.contain(`SPIFFE ID:     spiffe://${TD}/ns/${ns}/sa/payments`);
    expect(res.stdout).to.match(/Ready: {9}True \(Issued\) since /);
    expect(res.stdout).to.contain(`Serial:        ${w.status?.serialNumber}`);
    expect(res.stdout).to.match(/Renewal: {7}\d{4}-\d\d-\d\dT\S+Z \(in \S+\)/);
    expect(res.stdout).to.contain(
      `Secret:        ${ns}/payments-svid: serial ${w.status?.serialNumber} (as on status)`,
    );
    expect(res.stdout).to.match(/Events: {8}last 1\n {2}\S+ {2}Normal {2}Issued: Issued SVID/);
    expect(res.stdout + res.stderr).not.to.contain('PRIVATE KEY');
  });

  it('renew makes the operator re-issue once per request, and status records it', async () => {
    const before = await waitReady(kc, ns, 'payments');
    const first = await svidctl(['renew', 'payments', '-n', ns]);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.match(
      /requested a new SVID for \S+\/payments \(identity\.svid\.dev\/renew-request=\S+\)/,
    );
    const value = /renew-request=(\S+)\)/.exec(first.stdout)?.[1];
    const renewed = await until('the renewed SVID', 60_000, async () => {
      const w = await getIdentity(kc, ns, 'payments');
      return w.status?.lastRenewRequest === value && w.status?.serialNumber !== before.status?.serialNumber
        ? w
        : undefined;
    });
    expect(renewed.status?.revision).to.equal((before.status?.revision ?? 0) + 1);
    expect(
      await op.metric('svid_operator_issuances_total', { cause: 'RenewRequested', result: 'success' }),
    ).to.equal(1);
    const shown = await svidctl(['status', 'payments', '-n', ns]);
    expect(shown.stdout).to.contain(`Renew request: ${value} (done)`);
    expect(shown.stdout).to.contain(`Serial:        ${renewed.status?.serialNumber}`);

    // A second request (a new value) is honoured again, once: one more revision, not two.
    const second = await svidctl(['renew', 'payments', '-n', ns]);
    const value2 = /renew-request=(\S+)\)/.exec(second.stdout)?.[1];
    expect(value2).to.not.equal(value);
    const again = await until('the second renewal', 60_000, async () => {
      const w = await getIdentity(kc, ns, 'payments');
      return w.status?.lastRenewRequest === value2 ? w : undefined;
    });
    expect(again.status?.revision).to.equal((renewed.status?.revision ?? 0) + 1);
    // Two requests, two re-issues: neither was acted on twice.
    expect(
      await op.metric('svid_operator_issuances_total', { cause: 'RenewRequested', result: 'success' }),
    ).to.equal(2);
  });

  it('says what is wrong for an unknown identity (exit 1) and a bad name (exit 2)', async () => {
    const missing = await svidctl(['status', 'nope', '-n', ns]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain(
      `WorkloadIdentity ${ns}/nope not found: check the name and -n NAMESPACE`,
    );
    const missingRenew = await svidctl(['renew', 'nope', '-n', ns]);
    expect(missingRenew.code).to.equal(1);
    expect(missingRenew.stderr).to.contain('not found');
    const bad = await svidctl(['renew', 'Bad_Name', '-n', ns]);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.contain('"Bad_Name" is not a valid WorkloadIdentity name');
  });
});
