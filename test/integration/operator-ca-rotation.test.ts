import { expect } from 'chai';
import { randomBytes, X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  isReady,
  putCaSecret,
  until,
} from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { checkCoexistingPairs, SecretHistory, type SecretStateRecord } from '../harness/secret-history.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'rotate.example.org';
const IDENTITIES = 50;
// kubelet's Secret volume delay, scaled down with the operator's --ca-propagation-delay (which must exceed
// it, as the default 2m exceeds kubelet's 60-90 s). The margin between them also covers how much later this
// test's own watch may see a write than the operator's does on a loaded machine.
const KUBELET_DELAY_MS = 4_000;
const PROPAGATION = '8s';
const PHASE_LABEL = 'identity.svid.dev/ca-rotation-phase';

type Ca = { certPem: string; keyPem: string; fp: string; cert: X509Certificate };
const newCa = async (): Promise<Ca> => {
  const c = await createSelfSignedCa({ trustDomain: TD });
  const cert = new X509Certificate(c.certPem);
  return { ...c, fp: cert.fingerprint256, cert };
};
const signedBy = (s: SecretStateRecord, ca: Ca) =>
  s.leaf.checkIssued(ca.cert) && s.leaf.verify(ca.cert.publicKey);

describe('CA rotation in phases (50 identities, kubelet-like delay, restarts)', function () {
  this.timeout(10 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let op: OperatorProcess;
  const history = new SecretHistory();
  const suffix = randomBytes(3).toString('hex');
  const ns = `rot-${suffix}`;
  const sys = `rot-sys-${suffix}`;
  const names = Array.from({ length: IDENTITIES }, (_, i) => `w${String(i).padStart(2, '0')}`);
  const args = [
    `--trust-domain=${TD}`,
    `--ca-secret=${sys}/ca`,
    `--watch-namespace=${ns}`,
    `--ca-propagation-delay=${PROPAGATION}`,
    '--issuance-rate=20',
    '--min-duration=1m',
    '--min-renew-before=10s',
  ];
  const startOperator = async () => {
    op = new OperatorProcess(cp.kubeconfigPath, args);
    await op.start();
  };
  const phase = async () =>
    (await core.readNamespacedSecret({ namespace: sys, name: 'ca-rotation' })).metadata?.labels?.[
      PHASE_LABEL
    ];
  const everySecret = (what: string, timeoutMs: number, ok: (s: SecretStateRecord) => boolean) =>
    until(what, timeoutMs, async () => {
      const latest = history.latest();
      return latest.length === IDENTITIES && latest.every(ok) ? true : undefined;
    });
  const someSecrets = (what: string, timeoutMs: number, ok: (s: SecretStateRecord) => boolean) =>
    until(what, timeoutMs, async () => {
      // At least one (all may be done between two polls: a paced pass over 50 Secrets takes ~2 s).
      return history.latest().some(ok) ? true : undefined;
    });
  const onlyRoot = (s: SecretStateRecord, ca: Ca) => s.bundleKey === ca.fp;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    core = kc.makeApiClient(k8s.CoreV1Api);
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
  });
  after(async () => {
    await op?.stop();
    try {
      history.stop();
    } catch {
      // Reported by the test itself when it got that far.
    }
    expect(JSON.stringify(op?.logs ?? []) + (op?.stderr ?? '')).not.to.contain('PRIVATE KEY');
  });

  it('keeps every pair of coexisting Secret states mutually trusted, across two rotations and two restarts', async () => {
    const a = await newCa();
    const b = await newCa();
    const c = await newCa();
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': a.certPem, 'tls.key': a.keyPem });
    await startOperator();
    for (const n of names)
      await createIdentity(kc, ns, n, {
        serviceAccountName: n,
        secretName: `${n}-svid`,
        duration: '1m',
        renewBefore: '20s',
      });
    await until('every identity Ready', 120_000, async () => {
      for (const n of names) if (!isReady(await getIdentity(kc, ns, n))) return undefined;
      return true;
    });
    await history.start(kc, ns);
    expect(history.latest().every((s) => signedBy(s, a) && onlyRoot(s, a))).to.equal(true);

    // Rotation A -> B, uninterrupted.
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': b.certPem, 'tls.key': b.keyPem });
    // (a) bundles first: old + new roots, still signed by A, with kubectl-visible phase.
    await someSecrets('bundles with A and B while A still signs', 30_000, (s) => s.roots.length === 2);
    expect(await phase()).to.equal('Preparing');
    for (const s of history.latest()) expect(signedBy(s, a), s.secret).to.equal(true);
    // (b) then the switch to B, (c) and at last A leaves the bundles.
    await everySecret(
      'every SVID from B with only B trusted',
      4 * 60_000,
      (s) => signedBy(s, b) && onlyRoot(s, b),
    );
    expect(await phase()).to.equal('Stable');
    const bundleOnly = history.states.filter(
      (s, i) =>
        signedBy(s, a) &&
        s.roots.length === 2 &&
        history.states
          .slice(0, i)
          .some((p) => p.secret === s.secret && p.leaf.fingerprint256 === s.leaf.fingerprint256),
    );
    // A bundle-only change rewrote ca.crt and kept the certificate (and so its key).
    expect(bundleOnly.length).to.be.greaterThan(0);

    // Rotation B -> C with the operator killed once while bundles are prepared and once while re-issuing.
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': c.certPem, 'tls.key': c.keyPem });
    await someSecrets('some bundles with B and C', 30_000, (s) => s.roots.length === 2 && signedBy(s, b));
    await op.stop('SIGKILL');
    await startOperator();
    expect(await phase()).to.be.oneOf(['Preparing', 'Switching']);
    await someSecrets('some SVIDs from C', 60_000, (s) => signedBy(s, c));
    await op.stop('SIGKILL');
    await startOperator();
    expect(await phase()).to.be.oneOf(['Switching', 'Retiring']);
    await everySecret(
      'every SVID from C with only C trusted',
      4 * 60_000,
      (s) => signedBy(s, c) && onlyRoot(s, c),
    );
    history.stop();

    const result = checkCoexistingPairs(history.states, KUBELET_DELAY_MS);
    expect(result.failures.slice(0, 10), `${result.failures.length} of ${result.pairs} pairs`).to.deep.equal(
      [],
    );
    // The check saw the whole rotation: many pairs, and states of every CA.
    expect(result.pairs).to.be.greaterThan(IDENTITIES * IDENTITIES);
    for (const ca of [a, b, c]) expect(history.states.some((s) => signedBy(s, ca))).to.equal(true);
    console.log(`      ${history.states.length} Secret states, ${result.pairs} coexisting pairs, 0 failures`);
  });
});
