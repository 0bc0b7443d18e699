// The operator process: `npm start -- --trust-domain example.org --ca-secret svid-system/svid-operator-ca`.
// Runs against $KUBECONFIG, or the in-cluster configuration inside a pod.
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadKubeClient } from '../kube/load.ts';
import { Controller } from '../reconcilers/workload-identity/controller.ts';
import { ControllerMetrics } from '../reconcilers/workload-identity/metrics.ts';
import { LeaseElector } from '../leader/index.ts';
import { createPodCertificates } from '../reconcilers/pod-certificate/index.ts';
import { describe } from '../reconcilers/workload-identity/reconciler.ts';
import { ensureDevCa } from './dev-ca.ts';
import {
  ConfigError,
  parseBindAddress,
  parseConfig,
  USAGE,
  wantsHelp,
  parseTestTuning,
  type OperatorConfig,
  type TestTuning,
} from './config.ts';
import { healthServer, listen, metricsServer } from './http.ts';
import { createLogger } from './logger.ts';
import { collectProcessMetrics } from './process-metrics.ts';

/**
 * A watch that has had no open stream and no answer from the API server for this long makes /healthz
 * fail (an open watch with nothing to report is alive, however long it stays quiet).
 */
const UNHEALTHY_AFTER_MS = 5 * 60_000;
/**
 * How long the leader (or the only replica) waits for its caches to sync before it gives up: it releases
 * the Lease and exits, so the pod restarts and a standby can lead, instead of holding the Lease while doing
 * nothing (controller-runtime's CacheSyncTimeout is the same 2 minutes).
 */
const CACHE_SYNC_TIMEOUT_MS = 2 * 60_000;

export async function runOperator(
  config: OperatorConfig,
  env: NodeJS.ProcessEnv,
): Promise<() => Promise<void>> {
  const tuning: TestTuning = parseTestTuning(env);
  const unhealthyAfterMs = (tuning.healthWindowSeconds ?? 0) * 1000 || UNHEALTHY_AFTER_MS;
  const cacheSyncTimeoutMs = (tuning.cacheSyncTimeoutSeconds ?? 0) * 1000 || CACHE_SYNC_TIMEOUT_MS;
  const log = createLogger(config.logLevel);
  const kc = await loadKubeClient(env, { connections: config.apiConnections });
  const metrics = new ControllerMetrics();
  collectProcessMetrics(metrics.registry);
  const extraRootsPem = config.extraTrustRootsFile
    ? await readFile(config.extraTrustRootsFile, 'utf8')
    : undefined;
  const identity = env.POD_NAME || `${os.hostname()}-${process.pid}`;
  const controller = new Controller({
    kc,
    policy: {
      trustDomain: config.trustDomain,
      clusterDomain: config.clusterDomain,
      allowedDnsPatterns: config.allowedDnsPatterns,
      bounds: {
        minSeconds: config.minDurationSeconds,
        maxSeconds: config.maxDurationSeconds,
        minRenewBeforeSeconds: config.minRenewBeforeSeconds,
      },
    },
    caSecret: config.caSecret,
    extraRootsPem,
    caPropagationDelayMs: config.caPropagationDelaySeconds * 1000,
    untrackedLifetimeMs: config.podCertificates.enabled ? config.podCertificates.durationSeconds * 1000 : 0,
    watchNamespaces: config.watchNamespaces,
    concurrency: config.concurrency,
    writesInFlight: config.writesInFlight,
    issuanceRate: config.issuanceRate,
    apiQps: config.apiQps,
    resyncMs: config.resyncSeconds * 1000,
    instance: identity,
    metrics,
    log,
    informer: tuning.watchTimeoutSeconds
      ? { watchTimeoutSeconds: () => tuning.watchTimeoutSeconds as number }
      : undefined,
  });

  const podCerts = config.podCertificates.enabled
    ? createPodCertificates({
        kc,
        trustDomain: config.trustDomain,
        durationSeconds: config.podCertificates.durationSeconds,
        refreshAfterSeconds: config.podCertificates.refreshAfterSeconds,
        namespaces: config.podCertificates.namespaces,
        issuanceRate: config.issuanceRate,
        concurrency: config.concurrency,
        ca: () => controller.currentCa(),
        onCaChange: (listener) => controller.onCaChange(listener),
        registry: metrics.registry,
        instance: identity,
        log,
      })
    : undefined;

  let started = false;
  let synced = false;
  const startController = async () => {
    started = true;
    if (config.bootstrapDevCa) {
      // Only the leader (or the single replica) creates it; a failure leaves the CA reported unavailable.
      await ensureDevCa(kc, {
        ...config.caSecret,
        trustDomain: config.trustDomain,
        validitySeconds: config.bootstrapDevCaValiditySeconds,
        log,
      }).catch((err: unknown) =>
        log.error('could not create the development CA Secret', {
          caSecret: `${config.caSecret.namespace}/${config.caSecret.name}`,
          error: describe(err),
          fix: 'create the CA Secret yourself, or grant the operator create on Secrets in its namespace',
        }),
      );
    }
    await withTimeout(
      Promise.all([controller.start(), podCerts?.start()]),
      cacheSyncTimeoutMs,
      `the caches did not sync within ${cacheSyncTimeoutMs / 1000} s: check the warnings above, that the operator may list and watch WorkloadIdentities and Secrets (and, with --pod-certificate-signer, PodCertificateRequests) (RBAC), and that the WorkloadIdentity CRD is installed`,
    );
    synced = true;
    log.info('caches synced; reconciling');
  };
  const servers: Server[] = [];
  const health = parseBindAddress(config.healthProbeBindAddress);
  if (health) {
    const server = healthServer({
      // Alive while the watches are (a standby has none and is alive).
      healthy: () =>
        !started ||
        !synced ||
        (controller.healthy(unhealthyAfterMs) && (podCerts?.healthy(unhealthyAfterMs) ?? true)),
      ready: () => (config.leaderElect && !started) || synced,
    });
    const port = await listen(server, health.host, health.port);
    log.info('health probes listening', { address: `${health.host}:${port}`, healthPort: port });
    servers.push(server);
  }
  const metricsAddr = parseBindAddress(config.metricsBindAddress);
  if (metricsAddr) {
    const server = metricsServer(metrics.registry);
    const port = await listen(server, metricsAddr.host, metricsAddr.port);
    log.info('metrics listening', { address: `${metricsAddr.host}:${port}`, metricsPort: port });
    servers.push(server);
  }
  log.info('starting', {
    trustDomain: config.trustDomain,
    caSecret: `${config.caSecret.namespace}/${config.caSecret.name}`,
    watchNamespaces: config.watchNamespaces.length ? config.watchNamespaces : 'all',
    leaderElect: config.leaderElect,
    podCertificateSigner: config.podCertificates.enabled,
    identity,
  });

  let stopping = false;
  let elector: LeaseElector | undefined;
  if (config.leaderElect) {
    elector = new LeaseElector({
      kc,
      namespace: config.leaderElectionNamespace,
      name: config.leaderElectionId,
      identity,
      logger: log,
    });
    void elector.run({
      onStartedLeading: async () => {
        metrics.leader.set(1);
        log.info('became leader', { identity });
        try {
          await startController();
        } catch (err) {
          // Holding the Lease without reconciling would stop every standby from doing the work.
          stopping = true;
          log.error('the controller did not start; releasing the Lease and exiting', {
            identity,
            why: (err as Error).message,
          });
          controller.stop();
          await elector?.stop({ release: true });
          process.exit(1);
        }
      },
      onStoppedLeading: () => {
        metrics.leader.set(0);
        podCerts?.stop();
        controller.stop();
        if (!stopping) {
          // Like controller-runtime: a replica that lost its Lease exits and restarts clean, so it can
          // never write alongside the new leader.
          log.error('lost leadership; exiting', { identity });
          process.exit(1);
        }
      },
      onNewLeader: (leader) => log.info('leader observed', { leader }),
    });
  } else {
    try {
      await startController();
    } catch (err) {
      log.error('the controller did not start; exiting', { why: (err as Error).message });
      controller.stop();
      for (const s of servers) s.close();
      throw err;
    }
  }

  return async () => {
    stopping = true;
    log.info('shutting down');
    podCerts?.stop();
    controller.stop();
    await Promise.race([
      Promise.all([controller.idle(), podCerts?.idle()]),
      new Promise((r) => setTimeout(r, 5000)),
    ]);
    await elector?.stop({ release: true });
    for (const s of servers) s.close();
    log.info('stopped');
  };
}

/** Resolves or rejects as `work` does, or rejects with `message` after `ms`. */
async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  if (wantsHelp(process.argv.slice(2))) {
    console.log(USAGE);
    return;
  }
  let config: OperatorConfig;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`svid-operator: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const stop = await runOperator(config, process.env);
  let signalled = false;
  const onSignal = (signal: string) => {
    if (signalled) return;
    signalled = true;
    void stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`svid-operator: shutdown after ${signal} failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`svid-operator: ${(err as Error).message}`);
    process.exit(1);
  });
}
