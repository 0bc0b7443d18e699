import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

// A reduced run of `npm run bench` so the benchmark cannot rot. Its figures are not judged here: timed
// assertions do not belong in tests on a shared 2-core machine.
describe('npm run bench --smoke', function () {
  this.timeout(10 * 60_000);

  it('runs every measurement briefly and writes results.json with numbers', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'svid-bench-'));
    try {
      const out = path.join(dir, 'results.json');
      const script = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
      const { stdout } = await run(process.execPath, [script, '--smoke', '--out', out]);
      expect(stdout).to.contain('signing: ratio');
      const results = JSON.parse(await readFile(out, 'utf8')) as Record<string, Record<string, unknown>>;
      expect(results.machine?.cores).to.be.a('number');
      for (const key of ['perSecond', 'referencePerSecond', 'ratio']) {
        expect(results.signing?.[key], `signing.${key}`).to.be.a('number').greaterThan(0);
      }
      for (const key of ['handshakeRatio', 'swapP50Ms', 'swapP99Ms']) {
        expect(results.library?.[key], `library.${key}`).to.be.a('number').greaterThan(0);
      }
      expect(results.library?.failedRequests).to.be.a('number');
      for (const key of ['callsPerSecond', 'plainCallsPerSecond', 'callRatio', 'workloadApiRotationP99Ms']) {
        expect(results.grpc?.[key], `grpc.${key}`).to.be.a('number').greaterThan(0);
      }
      expect(results.grpc?.failedCalls).to.be.a('number');
      // The cluster figures: every key is a number (zero is a valid count), none left null.
      const cluster: Record<string, string[]> = {
        ttr: [
          'p50Ms',
          'p99Ms',
          'allReadySeconds',
          'ratioToApiLimit',
          'allReadyFromFirstCreateSeconds',
          'ratioFromFirstCreate',
        ],
        apiLimit: ['seconds', 'writesPerSecond'],
        cpu: ['msPerIssue'],
        writes: ['perIssue', 'perRenewal', 'afterRestart'],
        memory: ['baselineMb', 'kbPerIdentity', 'rssMb10k', 'rssMb10kIdle', 'rssMb10kWithUnrelatedSecrets'],
        caRotation: ['seconds', 'peakWritesPerSecond'],
        podCertificates: ['requests', 'p50Ms', 'p99Ms', 'allIssuedSeconds', 'operatorCpuSeconds'],
      };
      for (const [section, keys] of Object.entries(cluster)) {
        for (const key of keys) expect(results[section]?.[key], `${section}.${key}`).to.be.a('number');
      }
      // Memory after restarts launched as the image does, without its malloc settings, and as plain node.
      const restarted = (results.memory as { afterRestart: Record<string, unknown> }).afterRestart;
      for (const key of ['imageMb', 'noMallocSettingsMb', 'plainNodeMb'])
        expect(restarted[key], `memory.afterRestart.${key}`).to.be.a('number').greaterThan(0);
      // The scale curve: two points (the first wave, then up to the full number), each fully measured.
      const scale = results.scale as { points: Record<string, unknown>[]; growth: Record<string, unknown> };
      expect(scale.points.map((p) => p.identities)).to.deep.equal([20, 40]);
      for (const point of scale.points) {
        for (const key of [
          'allReadySeconds',
          'allReadyFromFirstCreateSeconds',
          'cpuMsPerIdentity',
          'apiServerCpuMsPerIdentity',
          'writesPerIdentity',
          'rssMb',
        ]) {
          expect(point[key], `scale point ${String(point.identities)}: ${key}`).to.be.a('number');
        }
      }
      for (const key of ['secondsPerIdentityRatio', 'cpuMsPerIdentityRatio', 'rssMbRatio']) {
        expect(scale.growth[key], `scale.growth.${key}`).to.be.a('number');
      }
      // The operator runs as the chart's ServiceAccount, so Priority and Fairness classified its requests.
      const apf = results.apf as { user: string; levels: { flowSchema: string; dispatched: number }[] };
      expect(apf.user).to.equal('system:serviceaccount:svid-system:svid-operator');
      expect(apf.levels.map((l) => l.flowSchema)).to.include('service-accounts');
      // The steady state runs with --long only; the smoke run says so instead of leaving it unexplained.
      expect(results.steady?.lateRenewals).to.equal(null);
      expect(results.notMeasured, stdout).to.deep.equal({
        steady: 'the steady state runs with --long only',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
