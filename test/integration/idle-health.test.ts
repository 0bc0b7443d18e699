// Issue 13, item 1: an operator on a quiet cluster must stay healthy for longer than its health window.
// A watch with nothing to report is still a live watch; before the fix, /healthz turned 503 about 5½
// minutes after start in every quiet cluster (and the chart's liveness probe restarted the pod forever).
//
// The CI run shortens the watch's lifetime (the server-side timeoutSeconds) and the health window through
// the operator's test-only environment variables, so watches end and are re-opened many times within the
// test. The same check also runs with the real defaults for 6½ minutes, longer than the 5-minute health
// window, as an operator on a quiet cluster really runs.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa } from '../../src/pki/index.ts';
import { createIdentity, createNamespace, putCaSecret, waitReady } from '../harness/identities.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'idle.example.org';

async function healthz(op: OperatorProcess): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${op.healthPort}/healthz`, { headers: { connection: 'close' } });
  await res.text();
  return res.status;
}

/** Polls /healthz every `everyMs` for `forMs`; returns every non-200 answer with its time. */
async function probeFor(op: OperatorProcess, forMs: number, everyMs: number): Promise<string[]> {
  const bad: string[] = [];
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    const code = await healthz(op);
    if (code !== 200) bad.push(`${new Date().toISOString()}: ${code}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return bad;
}

async function idleRun(
  kc: k8s.KubeConfig,
  cp: ControlPlane,
  env: Record<string, string>,
  idleMs: number,
  probeEveryMs: number,
): Promise<{ op: OperatorProcess; bad: string[]; ns: string }> {
  const suffix = randomBytes(3).toString('hex');
  const ns = `idle-${suffix}`;
  const sys = `idle-sys-${suffix}`;
  for (const n of [ns, sys]) await createNamespace(kc, n);
  const ca = await createSelfSignedCa({ trustDomain: TD });
  await putCaSecret(kc, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
  const op = new OperatorProcess(
    cp.kubeconfigPath,
    [`--trust-domain=${TD}`, `--ca-secret=${sys}/ca`, `--watch-namespace=${ns}`, '--log-level=debug'],
    env,
  );
  await op.start();
  const bad = await probeFor(op, idleMs, probeEveryMs);
  return { op, bad, ns };
}

describe('an idle operator stays healthy', function () {
  this.timeout(20 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let op: OperatorProcess | undefined;

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
  });

  afterEach(async () => {
    await op?.stop();
    op = undefined;
  });

  it('through many watch ends, for three health windows with nothing to watch, then still reconciles', async function () {
    this.timeout(3 * 60_000);
    const run = await idleRun(
      kc,
      cp,
      { SVID_TEST_WATCH_TIMEOUT_SECONDS: '1', SVID_TEST_HEALTH_WINDOW_SECONDS: '4' },
      14_000,
      250,
    );
    op = run.op;
    expect(run.bad, 'non-200 answers from /healthz while idle').to.deep.equal([]);
    // The watches really ended and were re-opened many times (3 watches, about one end per second each).
    const ends = op.logs.filter((l) => /watch closed by the API server/.test(l.message)).length;
    expect(ends).to.be.greaterThan(20);
    expect(op.logs.filter((l) => l.level === 'warn' || l.level === 'error')).to.deep.equal([]);
    // And they still deliver: a new identity is issued.
    await createIdentity(kc, run.ns, 'after-idle', { serviceAccountName: 'sa', secretName: 'after-idle' });
    await waitReady(kc, run.ns, 'after-idle');
    expect(await healthz(op)).to.equal(200);
  });

  it('with the real defaults for 6½ minutes, past the 5-minute health window', async function () {
    this.timeout(10 * 60_000);
    const run = await idleRun(kc, cp, {}, 390_000, 5_000);
    op = run.op;
    expect(run.bad, 'non-200 answers from /healthz while idle').to.deep.equal([]);
    await createIdentity(kc, run.ns, 'after-idle', { serviceAccountName: 'sa', secretName: 'after-idle' });
    await waitReady(kc, run.ns, 'after-idle');
  });
});
