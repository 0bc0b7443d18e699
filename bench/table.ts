// The table `npm run bench` prints: every figure with its target, from the results written to JSON.
import type { ScalePoint } from './cluster-result.ts';
import type { BenchResults } from './run.ts';
import type { ClusterSizes } from './cluster-result.ts';

export function printTable(r: BenchResults, sizes: ClusterSizes): void {
  const fmt = (n: number | null, digits = 1) => (n === null ? 'n/a' : n.toFixed(digits));
  const { signing, library: lib, grpc, ttr, writes, memory, caRotation, scale, steady, apiLimit, cpu } = r;
  const [p1, p2] = scale.points;
  const point = (p: ScalePoint | undefined, label: string): [string, string, string][] =>
    p
      ? [
          [
            `scale: ${p.identities} held (+${p.wave}): all Ready s after last / first create`,
            `${fmt(p.allReadySeconds)} / ${fmt(p.allReadyFromFirstCreateSeconds)}`,
            label,
          ],
          [
            '  operator / kube-apiserver CPU ms per identity',
            `${fmt(p.cpuMsPerIdentity, 2)} / ${fmt(p.apiServerCpuMsPerIdentity, 2)}`,
            '',
          ],
          [
            '  writes per identity, peak writes/s, RSS MB',
            `${fmt(p.writesPerIdentity, 2)}, ${fmt(p.peakWritesPerSecond, 0)}, ${fmt(p.rssMb)}`,
            '',
          ],
        ]
      : [];
  const rows: [string, string, string][] = [
    ['signing: SVIDs/s (ECDSA P-256, one core)', fmt(signing.perSecond), ''],
    ['signing: node:crypto keygen + sign /s', fmt(signing.referencePerSecond), ''],
    ['signing: ratio', fmt(signing.ratio, 3), 'target >= 0.4'],
    [`time to Ready: p50 ms (${sizes.wave} identities)`, fmt(ttr.p50Ms, 0), ''],
    ['time to Ready: p99 ms', fmt(ttr.p99Ms, 0), ''],
    ['time to Ready: all Ready, s after last create', fmt(ttr.allReadySeconds), 'target <= 20'],
    [`API limit: s for ${apiLimit.identities} Secret creates + status patches`, fmt(apiLimit.seconds), ''],
    ['time to all Ready / API limit', fmt(ttr.ratioToApiLimit, 2), 'target <= 1.5'],
    ['time to all Ready from the first create / API limit', fmt(ttr.ratioFromFirstCreate, 2), ''],
    ['operator CPU ms per first issuance', fmt(cpu.msPerIssue, 2), 'target <= 3'],
    ...Object.entries(ttr.cpuSeconds ?? {}).map(([name, seconds]): [string, string, string] => [
      `  CPU s during the wave: ${name}`,
      fmt(seconds),
      '',
    ]),
    ['writes per issued SVID (Secret + status)', fmt(writes.perIssue, 2), 'target <= 2'],
    ['  Events per issued SVID', fmt(writes.eventsPerIssue, 2), ''],
    ['writes per renewal (Secret + status)', fmt(writes.perRenewal, 2), ''],
    ['  Events per renewal', fmt(writes.eventsPerRenewal, 2), ''],
    ['writes after a restart, all up to date', fmt(writes.afterRestart, 0), 'target 0'],
    ['  Events after that restart', fmt(writes.eventsAfterRestart, 0), ''],
    ['memory: RSS MB, idle with no identities', fmt(memory.baselineMb), 'target < 80'],
    ['memory: KB per identity (largest point - baseline)', fmt(memory.kbPerIdentity, 2), 'target <= 3'],
    [`memory: RSS MB, ${sizes.scaleTo} identities Ready`, fmt(memory.rssMb10k), 'target < 110'],
    [`memory: RSS MB, the same after ${memory.idleSeconds} s more idle`, fmt(memory.rssMb10kIdle), ''],
    [
      `memory: RSS MB, + ${sizes.unrelatedSecrets} unrelated Secrets`,
      fmt(memory.rssMb10kWithUnrelatedSecrets),
      'no rise',
    ],
    [`memory: RSS MB, ${sizes.scaleTo} after a restart, as the image`, fmt(memory.afterRestart.imageMb), ''],
    ['  the same without its malloc settings', fmt(memory.afterRestart.noMallocSettingsMb), 'target < 110'],
    ['  the same as plain node (no node flags either)', fmt(memory.afterRestart.plainNodeMb), ''],
    ...point(p1, ''),
    ...point(p2, ''),
    [
      'scale: growth per identity (s, CPU, writes, RSS)',
      scale.growth
        ? [
            scale.growth.secondsPerIdentityRatio,
            scale.growth.cpuMsPerIdentityRatio,
            scale.growth.writesPerIdentityRatio,
            scale.growth.rssMbRatio,
          ]
            .map((x) => fmt(x, 2))
            .join(' ')
        : 'n/a',
      'largest / smallest point',
    ],
    [
      `steady: ${steady.identities} x ${steady.svidDuration ?? '-'} SVIDs, writes/s mean / peak`,
      `${fmt(steady.writesPerSecondMean)} / ${fmt(steady.writesPerSecondPeak)}`,
      '',
    ],
    [
      'steady: operator cores mean / 10-s peak',
      `${fmt(steady.operatorCoresMean, 3)} / ${fmt(steady.operatorCoresPeak, 3)}`,
      '',
    ],
    [
      'steady: queue depth max / mean',
      `${fmt(steady.queueDepthMax, 0)} / ${fmt(steady.queueDepthMean, 1)}`,
      '',
    ],
    [`steady: late renewals of ${steady.renewals ?? 0}`, fmt(steady.lateRenewals, 0), 'target 0'],
    ['steady: SVIDs overdue at the end of the window', fmt(steady.overdueAtEnd, 0), 'target 0'],
    [
      'steady: renewals taken early / earliest s; pacer held ahead max',
      `${fmt(steady.earlyRenewals, 0)} / ${fmt(steady.maxEarlinessSeconds)}; ${fmt(steady.pacerAheadMax, 0)}`,
      '',
    ],
    [
      'steady: max lateness s (renewal or overdue)',
      fmt(steady.maxLatenessSeconds),
      'within the jitter bound',
    ],
    [
      'steady: reconcile p50 / p99 ms; API request p50 / p99 ms',
      `${fmt(steady.reconcileP50Ms)} / ${fmt(steady.reconcileP99Ms)}; ${fmt(steady.apiRequestP50Ms)} / ${fmt(steady.apiRequestP99Ms)}`,
      'bucket bounds',
    ],
    [`CA rotation: s to re-issue ${sizes.wave}`, fmt(caRotation.seconds), ''],
    ['CA rotation: peak API writes/s', fmt(caRotation.peakWritesPerSecond), ''],
    [
      `pod certificates: requests -> Issued p50 ms (${r.podCertificates.requests})`,
      fmt(r.podCertificates.p50Ms, 0),
      '',
    ],
    ['pod certificates: p99 ms', fmt(r.podCertificates.p99Ms, 0), ''],
    ['pod certificates: all Issued, s after last create', fmt(r.podCertificates.allIssuedSeconds), ''],
    ['pod certificates: signer CPU s', fmt(r.podCertificates.operatorCpuSeconds), ''],
    ['library: handshakes/s, reloading server', fmt(lib.libraryHandshakesPerSecond), ''],
    ['library: handshakes/s, plain node:tls', fmt(lib.plainHandshakesPerSecond), ''],
    ['library: handshake ratio', fmt(lib.handshakeRatio, 3), 'target >= 0.95'],
    [`library: swap -> new cert p50 ms (${lib.swaps ?? 0} swaps)`, fmt(lib.swapP50Ms), ''],
    ['library: swap -> new cert p99 ms', fmt(lib.swapP99Ms), 'target <= 1000'],
    [`library: failed requests of ${lib.requests ?? 0} during swaps`, fmt(lib.failedRequests, 0), 'target 0'],
    ['gRPC: calls/s, rotating SVID credentials', fmt(grpc.callsPerSecond), ''],
    ['gRPC: calls/s, plain grpc-js TLS credentials', fmt(grpc.plainCallsPerSecond), ''],
    ['gRPC: call ratio', fmt(grpc.callRatio, 3), 'target >= 0.95'],
    ['gRPC: calls per CPU-second ratio', fmt(grpc.cpuCallRatio, 3), ''],
    ['gRPC: failed calls', fmt(grpc.failedCalls, 0), 'target 0'],
    [
      `Workload API: rotation -> new SVID p50 ms (${grpc.workloadApiRotations ?? 0})`,
      fmt(grpc.workloadApiRotationP50Ms),
      '',
    ],
    ['Workload API: rotation -> new SVID p99 ms', fmt(grpc.workloadApiRotationP99Ms), 'target <= 1000'],
  ];
  const load = (l: number[] | null) => (l ? l.map((x) => x.toFixed(2)).join(' ') : 'n/a');
  console.log(
    `\nmachine: ${r.machine.cores} cores, Node ${r.machine.node}${r.machine.smoke ? ' (smoke run)' : ''}; load average at start ${load(r.machine.loadAverage.start)}, at end ${load(r.machine.loadAverage.end)}`,
  );
  for (const [name, value, target] of rows)
    console.log(`${name.padEnd(60)} ${value.padStart(14)}  ${target}`);
  for (const [what, why] of Object.entries(r.notMeasured)) console.log(`not measured: ${what}: ${why}`);
}
