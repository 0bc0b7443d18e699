// The cluster section's figures (bench/results.json), every one null until measured.
import type { ApfLevel } from './apf.ts';
import { emptyPodCertResult, type PodCertBenchResult } from './pod-certificates.ts';

export interface ClusterSizes {
  /** Identities in the time-to-Ready wave (the first scale point), also the ones re-issued on the CA change. */
  wave: number;
  /** Identities held at the second scale point (the first wave included); also when memory is measured. */
  scaleTo: number;
  /** Unrelated Secrets added for the second memory figure. */
  unrelatedSecrets: number;
  /** How long the operator stays idle after the second scale point before memory.rssMb10kIdle is read. */
  idleSeconds: number;
  /** Short-lived identities whose renewals are counted. */
  renewing: number;
  /** Steady state (--long only): identities, their SVID lifetime, and how long it is observed. */
  steady: { identities: number; duration: string; windowSeconds: number } | null;
}

/** One point of the scale curve: a wave of identities created with 16 concurrent creates. */
export interface ScalePoint {
  /** Identities the operator holds once the wave is Ready (earlier waves included). */
  identities: number;
  /** Identities created in this wave; the per-identity figures divide by it. */
  wave: number;
  /** From the first create to the last one answered. */
  createSeconds: number;
  /** From the last create until every identity of the wave was Ready. */
  allReadySeconds: number;
  /** From the first create until every identity of the wave was Ready. */
  allReadyFromFirstCreateSeconds: number;
  p50Ms: number;
  p99Ms: number;
  /** Operator CPU (user + system, /proc) from the first create until all were Ready, per identity of the wave. */
  cpuMsPerIdentity: number;
  apiServerCpuMsPerIdentity: number;
  etcdCpuMsPerIdentity: number;
  /** Secret + status writes per identity of the wave, counted by the operator once it went idle. */
  writesPerIdentity: number | null;
  eventsPerIdentity: number | null;
  /**
   * The highest one-second write rate (Secret + status + Event) during the wave: near --api-qps (default
   * 100) means the client-side limit, not the API server, set the pace.
   */
  peakWritesPerSecond: number | null;
  /** Operator RSS once idle with `identities` held. */
  rssMb: number;
  /** CPU seconds of every process from the first create until all were Ready. */
  cpuSeconds: Record<string, number>;
}

export interface ClusterResult {
  ttr: {
    p50Ms: number | null;
    p99Ms: number | null;
    allReadySeconds: number | null;
    identities: number;
    /** Where the time went: CPU seconds each process used from the first create until all were Ready. */
    cpuSeconds: Record<string, number> | null;
    /** allReadySeconds of the first wave ÷ apiLimit.seconds (the same writes from a plain client). */
    ratioToApiLimit: number | null;
    /** Seconds from the first create until all were Ready (the creates themselves included). */
    allReadyFromFirstCreateSeconds: number | null;
    /**
     * allReadyFromFirstCreateSeconds ÷ apiLimit.seconds: the stricter ratio. When the operator keeps pace with
     * the creates, ratioToApiLimit only measures its lag behind the last one; this one charges it with the
     * whole wave, the identities' own creates included, which the plain client's reference does not make.
     */
    ratioFromFirstCreate: number | null;
  };
  /** A plain client-node client at the same concurrency writing what the operator writes for `wave` identities. */
  apiLimit: {
    identities: number;
    concurrency: number;
    /** Time for `identities` Secret creates plus as many status patches (the identities existed already). */
    seconds: number | null;
    writesPerSecond: number | null;
  };
  /** The operator's requests under API Priority and Fairness (it runs as the chart's ServiceAccount). */
  apf: { user: string | null; levels: ApfLevel[] | null };
  cpu: { msPerIssue: number | null };
  writes: {
    perIssue: number | null;
    perRenewal: number | null;
    afterRestart: number | null;
    eventsPerIssue: number | null;
    eventsPerRenewal: number | null;
    eventsAfterRestart: number | null;
  };
  memory: {
    /** Idle operator with no identities, after its start settled. */
    baselineMb: number | null;
    /** (RSS at the largest scale point - baseline) ÷ identities held there, in KB. */
    kbPerIdentity: number | null;
    rssMb10k: number | null;
    /**
     * RSS at the largest scale point once the operator has been idle `idleSeconds` more: rssMb10k is read
     * 3 s after the wave's last write, when V8 and malloc may still hold the wave's garbage.
     */
    rssMb10kIdle: number | null;
    idleSeconds: number;
    rssMb10kWithUnrelatedSecrets: number | null;
    /**
     * RSS at the largest point after a restart (everything up to date, 0 writes), launched three ways: as
     * the image does, without its malloc settings (MALLOC_ARENA_MAX, GLIBC_TUNABLES), and as plain `node`
     * (neither those nor its node flags): whether the memory figures rest on the settings.
     */
    afterRestart: {
      imageMb: number | null;
      noMallocSettingsMb: number | null;
      plainNodeMb: number | null;
    };
    identities: number;
    unrelatedSecrets: number;
  };
  scale: {
    method: string;
    points: ScalePoint[];
    /** The largest point's figure ÷ the smallest's: 1 means the cost per identity did not grow. */
    growth: {
      secondsPerIdentityRatio: number;
      cpuMsPerIdentityRatio: number;
      apiServerCpuMsPerIdentityRatio: number;
      writesPerIdentityRatio: number | null;
      rssMbRatio: number;
    } | null;
  };
  caRotation: { seconds: number | null; peakWritesPerSecond: number | null; identities: number };
  /** PodCertificateRequests answered by the signer, as many as the first wave (bench/pod-certificates.ts). */
  podCertificates: PodCertBenchResult;
  steady: {
    identities: number;
    svidDuration: string | null;
    windowSeconds: number | null;
    /** The operator's --issuance-rate during the window (re-issuances of still-valid SVIDs per second). */
    issuanceRate: number | null;
    writesPerSecondMean: number | null;
    writesPerSecondPeak: number | null;
    eventsPerSecondMean: number | null;
    /** Operator CPU-seconds per second over the window (cores used), and the highest 10-s average. */
    operatorCoresMean: number | null;
    operatorCoresPeak: number | null;
    queueDepthMax: number | null;
    queueDepthMean: number | null;
    /** New SVIDs seen during the window. */
    renewals: number | null;
    /** Renewals in the window that came later than renewal time + the jitter bound (of `renewals`). */
    lateRenewals: number | null;
    /** SVIDs not renewed at the end of the window and past renewal time + the jitter bound. */
    overdueAtEnd: number | null;
    /** The latest renewal or overdue SVID, seconds past its renewal time. */
    maxLatenessSeconds: number | null;
    /** The most re-issuances waiting for an --issuance-rate token (one sample a second). */
    pacerBacklogMax: number | null;
    /** The most renewals the pacer held inside their look-ahead window, not yet due (one sample a second). */
    pacerAheadMax: number | null;
    /** Renewals in the window whose new SVID showed up before their renewal time, and the earliest, s. */
    earlyRenewals: number | null;
    maxEarlinessSeconds: number | null;
    /** Reconciles running at the sample (of --concurrency), mean and max over the window. */
    activeReconcilesMean: number | null;
    activeReconcilesMax: number | null;
    /** Identities whose Secret and status writes were in flight at the sample (of --writes-in-flight). */
    writingMean: number | null;
    writingMax: number | null;
    /** Reconciles in the window, and their duration (bucket upper bounds of the operator's histogram). */
    reconciles: number | null;
    /** Reconciles that failed and were retried with backoff. */
    reconcileErrors: number | null;
    reconcileP50Ms: number | null;
    reconcileP99Ms: number | null;
    /** The reconciler's API requests' round trips (Secret and status writes). */
    apiRequestP50Ms: number | null;
    apiRequestP99Ms: number | null;
    /** How long keys waited in the work queue before their reconcile. */
    queueWaitP50Ms: number | null;
    queueWaitP99Ms: number | null;
    /** Status renewalTime values that differ from src/renewal's rule by more than a second. */
    renewalTimeMismatches: number | null;
  };
}

export function emptyClusterResult(sizes: ClusterSizes): ClusterResult {
  return {
    ttr: {
      p50Ms: null,
      p99Ms: null,
      allReadySeconds: null,
      identities: sizes.wave,
      cpuSeconds: null,
      ratioToApiLimit: null,
      allReadyFromFirstCreateSeconds: null,
      ratioFromFirstCreate: null,
    },
    apiLimit: { identities: sizes.wave, concurrency: 16, seconds: null, writesPerSecond: null },
    apf: { user: null, levels: null },
    cpu: { msPerIssue: null },
    writes: {
      perIssue: null,
      perRenewal: null,
      afterRestart: null,
      eventsPerIssue: null,
      eventsPerRenewal: null,
      eventsAfterRestart: null,
    },
    memory: {
      baselineMb: null,
      kbPerIdentity: null,
      rssMb10k: null,
      rssMb10kIdle: null,
      idleSeconds: sizes.idleSeconds,
      rssMb10kWithUnrelatedSecrets: null,
      afterRestart: { imageMb: null, noMallocSettingsMb: null, plainNodeMb: null },
      identities: sizes.scaleTo,
      unrelatedSecrets: sizes.unrelatedSecrets,
    },
    scale: {
      method: `a wave of identities created with 16 concurrent creates into the running operator: ${sizes.wave} into an empty cluster, then ${sizes.scaleTo - sizes.wave} more into the operator holding the first ${sizes.wave} (so it holds ${sizes.scaleTo})`,
      points: [],
      growth: null,
    },
    caRotation: { seconds: null, peakWritesPerSecond: null, identities: sizes.wave },
    podCertificates: emptyPodCertResult(sizes.wave),
    steady: {
      identities: sizes.steady?.identities ?? 0,
      svidDuration: sizes.steady?.duration ?? null,
      windowSeconds: sizes.steady?.windowSeconds ?? null,
      issuanceRate: null,
      writesPerSecondMean: null,
      writesPerSecondPeak: null,
      eventsPerSecondMean: null,
      operatorCoresMean: null,
      operatorCoresPeak: null,
      queueDepthMax: null,
      queueDepthMean: null,
      renewals: null,
      lateRenewals: null,
      overdueAtEnd: null,
      pacerBacklogMax: null,
      pacerAheadMax: null,
      earlyRenewals: null,
      maxEarlinessSeconds: null,
      activeReconcilesMean: null,
      activeReconcilesMax: null,
      writingMean: null,
      writingMax: null,
      reconciles: null,
      reconcileErrors: null,
      reconcileP50Ms: null,
      reconcileP99Ms: null,
      apiRequestP50Ms: null,
      apiRequestP99Ms: null,
      queueWaitP50Ms: null,
      queueWaitP99Ms: null,
      maxLatenessSeconds: null,
      renewalTimeMismatches: null,
    },
  };
}
