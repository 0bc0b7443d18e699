// SVIDs signed per second on one core (ECDSA P-256) against the floor any implementation pays: one
// P-256 key generation and one P-256 signature with node:crypto, both synchronous (the fastest way to
// call them), measured in the same run.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createSelfSignedCa, issueSvid, loadCa } from '../src/pki/index.ts';
import { median } from './stats.ts';

export interface SigningResult {
  perSecond: number;
  referencePerSecond: number;
  ratio: number;
  rounds: number;
}

async function rate(op: () => Promise<unknown>, ms: number): Promise<number> {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    await op();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Alternates reference and SVID rounds so machine noise hits both alike; returns medians. */
export async function benchSigning(opts: { rounds: number; roundMs: number }): Promise<SigningResult> {
  const ca = await loadCa(await createSelfSignedCa({ trustDomain: 'bench.example' }));
  // A TBSCertificate-sized message for the reference signature.
  const tbs = randomBytes(400);
  const reference = async () => {
    generateKeyPairSync('ec', { namedCurve: 'P-256' });
    sign('sha256', tbs, ca.key);
  };
  const svid = () =>
    issueSvid(ca, {
      spiffeId: 'spiffe://bench.example/ns/bench/sa/workload',
      dnsNames: ['workload', 'workload.bench.svc'],
      durationSeconds: 3600,
    });
  await rate(reference, opts.roundMs);
  await rate(svid, opts.roundMs);
  const refs: number[] = [];
  const svids: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    refs.push(await rate(reference, opts.roundMs));
    svids.push(await rate(svid, opts.roundMs));
  }
  const perSecond = median(svids);
  const referencePerSecond = median(refs);
  return { perSecond, referencePerSecond, ratio: perSecond / referencePerSecond, rounds: opts.rounds };
}
