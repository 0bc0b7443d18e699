// Operator configuration from flags (controller-runtime style names) and environment variables (flags
// win), validated before anything starts; every problem is reported at once with how to fix it.
import { util } from '../builtins.ts';
import { patternProblem } from '../policy/index.ts';
import { parseDuration } from '../renewal/index.ts';
import { trustDomainProblem } from '../spiffe/index.ts';

export interface OperatorConfig {
  trustDomain: string;
  caSecret: { namespace: string; name: string };
  clusterDomain: string;
  minDurationSeconds: number;
  maxDurationSeconds: number;
  allowedDnsPatterns: string[];
  watchNamespaces: string[];
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  concurrency: number;
  writesInFlight: number;
  /** At most this many connections to the API server carry requests at once (watches have their own). */
  apiConnections: number;
  apiQps: number;
  issuanceRate: number;
  resyncSeconds: number;
  extraTrustRootsFile?: string;
  caPropagationDelaySeconds: number;
  minRenewBeforeSeconds: number;
  logLevel: string;
  /** Create a self-signed development CA in the --ca-secret Secret when it does not exist. */
  bootstrapDevCa: boolean;
  bootstrapDevCaValiditySeconds: number;
  /** Pod certificates (src/reconcilers/pod-certificate): off unless --pod-certificate-signer=true. */
  podCertificates: PodCertificateConfig;
}

export interface PodCertificateConfig {
  enabled: boolean;
  durationSeconds: number;
  namespaces: string[];
  /**
   * --pod-certificate-refresh-after: beginRefreshAt this long after notBefore instead of the renewal rule
   * (a third of the lifetime before expiry, minus per-pod jitter). Unset by default.
   */
  refreshAfterSeconds?: number;
}

export class ConfigError extends Error {}

/**
 * Each option: its flag, its environment variable, and its default. The Helm chart sets every one of them
 * from a value (a chart test renders the chart and checks that each flag here is among the arguments):
 * a new flag needs a value in charts/svid-operator/values.yaml, values.schema.json and the Deployment.
 */
export const OPTIONS = {
  'trust-domain': {
    env: 'SVID_TRUST_DOMAIN',
    default: undefined,
    help: 'SPIFFE trust domain of every SVID (required), e.g. example.org',
  },
  'ca-secret': {
    env: 'SVID_CA_SECRET',
    default: undefined,
    help: 'NAMESPACE/NAME of the Secret holding the signing CA (tls.crt and tls.key; required)',
  },
  'cluster-domain': {
    env: 'SVID_CLUSTER_DOMAIN',
    default: 'cluster.local',
    help: 'cluster DNS suffix used by the default DNS policy',
  },
  'min-duration': { env: 'SVID_MIN_DURATION', default: '10m', help: 'shortest spec.duration accepted' },
  'max-duration': { env: 'SVID_MAX_DURATION', default: '24h', help: 'longest spec.duration accepted' },
  'allowed-dns-pattern': {
    env: 'SVID_ALLOWED_DNS_PATTERNS',
    default: undefined,
    help: 'DNS names an identity may request beyond its own Service names, e.g. *.example.com',
    multiple: true,
  },
  'watch-namespace': {
    env: 'SVID_WATCH_NAMESPACES',
    default: undefined,
    help: 'namespace to watch (default: all)',
    multiple: true,
  },
  'leader-elect': {
    env: 'SVID_LEADER_ELECT',
    default: 'false',
    help: 'hold a Lease so only one replica writes (true|false)',
  },
  'leader-election-namespace': {
    env: 'POD_NAMESPACE',
    default: undefined,
    help: 'namespace of that Lease (POD_NAMESPACE in a pod)',
  },
  'leader-election-id': {
    env: 'SVID_LEADER_ELECTION_ID',
    default: 'svid-operator',
    help: 'name of that Lease',
  },
  'metrics-bind-address': {
    env: 'SVID_METRICS_BIND_ADDRESS',
    default: ':8080',
    help: 'address of /metrics; 0 disables it',
  },
  'health-probe-bind-address': {
    env: 'SVID_HEALTH_PROBE_BIND_ADDRESS',
    default: ':8081',
    help: 'address of /healthz and /readyz',
  },
  // Reconciles in flight: a slot is held to read the caches, decide and sign (about a millisecond), not for
  // API writes, which run in a write slot (--writes-in-flight); a key waiting for a write slot keeps its
  // reconcile slot, so when the writes are the limit, new work waits in the queue (backpressure).
  concurrency: { env: 'SVID_CONCURRENCY', default: '32', help: 'identities reconciled at once' },
  // Identities whose writes (Secret, then status, in that order) are in flight at once. Renewing 10,000
  // 10-minute SVIDs takes ~51 writes/s on average (25.6 renewals); at the 250 ms median and multi-second
  // tail of a loaded API server that is ~30 renewals in flight on average and twice that at the peaks, so
  // 64. Each in-flight write occupies one seat of the operator's API Priority and Fairness level
  // (workload-low: ~245 seats on a default API server, shared with other service accounts, whose flows APF
  // queues fairly against the operator's); --api-qps still bounds the rate.
  'writes-in-flight': {
    env: 'SVID_WRITES_IN_FLIGHT',
    default: '64',
    help: 'identities whose API writes are in flight at once',
  },
  // Connections to the API server open at once for requests; more requests wait in the pool's queue for a
  // free one. Unbounded, the pool opened one TLS connection per request in flight (~100 at a wave with 64
  // writes in flight), whose buffers stayed resident in malloc's heap: 32 saved 4-6 MB at 2,000 identities
  // with no slower wave (hack/profile-wave.ts). 32 connections at a 250 ms API server carry 128 requests/s,
  // 2.5 times the 51 writes/s of renewing 10,000 10-minute SVIDs. Watches hold a connection each for minutes
  // and use a pool of their own, so they never take the requests' connections.
  'api-connections': {
    env: 'SVID_API_CONNECTIONS',
    default: '32',
    help: 'connections to the API server for requests (watches have their own)',
  },
  // A ceiling against a runaway loop, not the pace: API Priority and Fairness (on since Kubernetes 1.20,
  // GA in 1.29) queues the operator fairly within its priority level (workload-low for a ServiceAccount),
  // and controller-runtime dropped its client-side default (100/150) for that reason. 400 is about what one
  // API server absorbs from one client at 16 writers on 2 cores (380 writes/s measured by `npm run bench`);
  // 100 set the pace of a 1,000-identity wave there (3.3 times the API server's own time).
  'api-qps': { env: 'SVID_API_QPS', default: '400', help: 'ceiling on API requests per second' },
  'issuance-rate': {
    env: 'SVID_ISSUANCE_RATE',
    default: '10',
    help: 're-issuances per second of SVIDs that are still valid (renewals, CA and bundle changes)',
  },
  'resync-period': {
    env: 'SVID_RESYNC_PERIOD',
    default: '10m',
    help: 're-check of every identity; 0 turns it off, else at least 1m',
  },
  'extra-trust-roots': {
    env: 'SVID_EXTRA_TRUST_ROOTS',
    default: undefined,
    help: 'PEM file of roots added to every trust bundle',
  },
  'ca-propagation-delay': {
    env: 'SVID_CA_PROPAGATION_DELAY',
    default: '2m',
    help: "wait between the phases of a CA rotation; above kubelet's Secret sync delay",
  },
  'min-renew-before': { env: 'SVID_MIN_RENEW_BEFORE', default: '1m', help: 'shortest renewBefore used' },
  'log-level': {
    env: 'SVID_LOG_LEVEL',
    default: 'info',
    help: 'error, warn, info or debug (JSON lines on stdout)',
  },
  'bootstrap-dev-ca': {
    env: 'SVID_BOOTSTRAP_DEV_CA',
    default: 'false',
    help: 'create a self-signed development CA in --ca-secret when it is missing (true|false)',
  },
  'bootstrap-dev-ca-validity': {
    env: 'SVID_BOOTSTRAP_DEV_CA_VALIDITY',
    default: '8760h',
    help: 'lifetime of that development CA',
  },
  // Pod certificates (KEP-4317); see src/reconcilers/pod-certificate.
  'pod-certificate-signer': {
    env: 'SVID_POD_CERTIFICATE_SIGNER',
    default: 'false',
    help: 'sign Kubernetes PodCertificateRequests for the SPIFFE signer (true|false)',
  },
  'pod-certificate-duration': {
    env: 'SVID_POD_CERTIFICATE_DURATION',
    default: '24h',
    help: 'longest pod certificate issued',
  },
  'pod-certificate-namespace': {
    env: 'SVID_POD_CERTIFICATE_NAMESPACES',
    default: undefined,
    help: 'namespace whose PodCertificateRequests are signed (default: all)',
    multiple: true,
  },
  'pod-certificate-refresh-after': {
    env: 'SVID_POD_CERTIFICATE_REFRESH_AFTER',
    default: undefined,
    help: 'beginRefreshAt this long after notBefore instead of the renewal rule',
  },
} as const;

/** `svid-operator --help`: every flag with what it does, its environment variable and its default. */
export const USAGE = `usage: svid-operator --trust-domain TD --ca-secret NAMESPACE/NAME [flags]

Every flag can also be set by its environment variable; a flag wins over the variable.
Durations are Go-style (90s, 10m, 24h).

flags:
${Object.entries(OPTIONS)
  .map(([flag, o]) => {
    const name = `--${flag}${'multiple' in o ? ' (repeatable)' : ''}`;
    const env = `env ${o.env}${'multiple' in o ? ', comma-separated' : ''}`;
    return `  ${name}\n      ${o.help}\n      (${env}${o.default ? `; default ${o.default}` : ''})`;
  })
  .join('\n')}
  --help, -h
      print this help and exit`;

/**
 * True when the arguments ask for the usage (`--help` or `-h` before any `--`): the operator prints USAGE
 * and exits 0 without validating anything else.
 */
export function wantsHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): OperatorConfig {
  if (argv.some((a) => a === '--ca-overlap' || a.startsWith('--ca-overlap=')) || env.SVID_CA_OVERLAP) {
    throw new ConfigError(
      '--ca-overlap (SVID_CA_OVERLAP) was replaced by --ca-propagation-delay: a CA rotation now runs in phases (bundles first, then signing, then the old root leaves after its last SVID expired), see the README section "Rotating the CA"',
    );
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    values = util.parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(OPTIONS).map(([flag, o]) => [flag, { type: 'string', multiple: 'multiple' in o }]),
      ),
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; run svid-operator --help for the flags it takes`);
  }
  const problems: string[] = [];
  const get = (flag: keyof typeof OPTIONS): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    const fromEnv = env[OPTIONS[flag].env];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : OPTIONS[flag].default;
  };
  const list = (flag: keyof typeof OPTIONS): string[] => {
    const v = values[flag];
    if (Array.isArray(v) && v.length > 0) return v;
    return (env[OPTIONS[flag].env] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  };
  const duration = (flag: keyof typeof OPTIONS): number => {
    try {
      return parseDuration(get(flag) ?? '');
    } catch (err) {
      problems.push(`--${flag}: ${(err as Error).message}`);
      return 0;
    }
  };
  const number = (flag: keyof typeof OPTIONS, min: number): number => {
    const n = Number(get(flag));
    if (!Number.isFinite(n) || n < min)
      problems.push(`--${flag} must be a number >= ${min}, not "${get(flag)}"`);
    return n;
  };

  // A count given in decimal digits only (no 1e3, 0x10, 1.5 or spaces), from min to max.
  const whole = (flag: keyof typeof OPTIONS, min: number, max: number): number => {
    const text = get(flag) ?? '';
    const n = /^\d{1,7}$/.test(text) ? Number(text) : Number.NaN;
    if (!(n >= min && n <= max)) {
      problems.push(`--${flag} must be a whole number from ${min} to ${max}, not "${text}"`);
      return min;
    }
    return n;
  };

  // 0 turns the resync off; anything else re-checks every identity that often, so it must not be tiny.
  const resyncPeriod = (): number => {
    const seconds = duration('resync-period');
    if (seconds > 0 && seconds < 60) {
      problems.push(
        `--resync-period must be 0 (off) or at least 1m, not "${get('resync-period')}": every resync re-checks every identity`,
      );
    }
    return seconds;
  };

  const trustDomain = get('trust-domain') ?? '';
  if (!trustDomain) problems.push('--trust-domain is required (the SPIFFE trust domain, e.g. example.org)');
  else {
    const p = trustDomainProblem(trustDomain);
    if (p) problems.push(`--trust-domain: ${p}`);
  }
  const caSecretText = get('ca-secret') ?? '';
  const [caNs, caName, ...extra] = caSecretText.split('/');
  if (!caNs || !caName || extra.length > 0) {
    problems.push(`--ca-secret must be NAMESPACE/NAME of the CA Secret, not "${caSecretText}"`);
  }
  const minDurationSeconds = duration('min-duration');
  const maxDurationSeconds = duration('max-duration');
  if (minDurationSeconds > 0 && maxDurationSeconds > 0 && minDurationSeconds > maxDurationSeconds) {
    problems.push('--min-duration must not be longer than --max-duration');
  }
  if (minDurationSeconds <= 0 && problems.length === 0) problems.push('--min-duration must be positive');
  const allowedDnsPatterns = list('allowed-dns-pattern');
  for (const pattern of allowedDnsPatterns) {
    const p = patternProblem(pattern);
    if (p) problems.push(`--allowed-dns-pattern ${pattern}: ${p}`);
  }
  const leaderText = get('leader-elect') ?? 'false';
  if (!['true', 'false'].includes(leaderText))
    problems.push(`--leader-elect must be true or false, not "${leaderText}"`);
  const leaderElect = leaderText === 'true';
  const bootstrapText = get('bootstrap-dev-ca') ?? 'false';
  if (!['true', 'false'].includes(bootstrapText))
    problems.push(`--bootstrap-dev-ca must be true or false, not "${bootstrapText}"`);
  const bootstrapDevCaValiditySeconds = duration('bootstrap-dev-ca-validity');
  if (bootstrapDevCaValiditySeconds > 0 && bootstrapDevCaValiditySeconds < 3600)
    problems.push('--bootstrap-dev-ca-validity must be at least 1h');
  const leaderElectionNamespace = get('leader-election-namespace') ?? caNs ?? '';
  const logLevel = get('log-level') ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel))
    problems.push(`--log-level must be error, warn, info or debug`);
  const podCertificates = podCertificateConfig(get, list, duration, problems);
  const config: OperatorConfig = {
    trustDomain,
    caSecret: { namespace: caNs ?? '', name: caName ?? '' },
    clusterDomain: get('cluster-domain') ?? 'cluster.local',
    minDurationSeconds,
    maxDurationSeconds,
    allowedDnsPatterns,
    watchNamespaces: list('watch-namespace'),
    leaderElect,
    leaderElectionNamespace,
    leaderElectionId: get('leader-election-id') ?? 'svid-operator',
    metricsBindAddress: get('metrics-bind-address') ?? ':8080',
    healthProbeBindAddress: get('health-probe-bind-address') ?? ':8081',
    concurrency: number('concurrency', 1),
    writesInFlight: number('writes-in-flight', 1),
    apiConnections: whole('api-connections', 1, 1024),
    apiQps: number('api-qps', 1),
    issuanceRate: number('issuance-rate', 0.1),
    resyncSeconds: resyncPeriod(),
    extraTrustRootsFile: get('extra-trust-roots'),
    caPropagationDelaySeconds: duration('ca-propagation-delay'),
    minRenewBeforeSeconds: duration('min-renew-before'),
    logLevel,
    bootstrapDevCa: bootstrapText === 'true',
    bootstrapDevCaValiditySeconds,
    podCertificates,
  };
  if (config.caPropagationDelaySeconds <= 0 && !problems.some((p) => p.startsWith('--ca-propagation-delay')))
    problems.push(
      '--ca-propagation-delay must be positive, and longer than kubelet takes to update a mounted Secret (60-90 s; default 2m)',
    );
  if (config.minRenewBeforeSeconds <= 0 && !problems.some((p) => p.startsWith('--min-renew-before')))
    problems.push('--min-renew-before must be positive (default 1m)');
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return config;
}

/** ":8080" → all interfaces; "127.0.0.1:0" → loopback, any port; "0" → disabled. */
export function parseBindAddress(text: string): { host: string; port: number } | undefined {
  if (text === '0') return undefined;
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`bind address "${text}" must be HOST:PORT, :PORT or 0 (disabled)`);
  }
  return { host: text.slice(0, i) || '0.0.0.0', port };
}

/**
 * Test-only tuning from the environment, never from flags or the chart: tests shorten the watches'
 * server-side lifetime and the health window, so an idle operator's watches end and re-open many times
 * within a short test (the behaviour a real cluster shows over hours).
 */
export interface TestTuning {
  watchTimeoutSeconds?: number;
  healthWindowSeconds?: number;
  cacheSyncTimeoutSeconds?: number;
}

export function parseTestTuning(env: NodeJS.ProcessEnv): TestTuning {
  const seconds = (name: string): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1)
      throw new ConfigError(`${name} must be a whole number of seconds >= 1, not "${text}"`);
    return n;
  };
  return {
    watchTimeoutSeconds: seconds('SVID_TEST_WATCH_TIMEOUT_SECONDS'),
    healthWindowSeconds: seconds('SVID_TEST_HEALTH_WINDOW_SECONDS'),
    cacheSyncTimeoutSeconds: seconds('SVID_TEST_CACHE_SYNC_TIMEOUT_SECONDS'),
  };
}

/** Pod-certificate flags: the API server refuses lifetimes under 1 hour and over 91 days for a signer. */
function podCertificateConfig(
  get: (flag: 'pod-certificate-signer' | 'pod-certificate-refresh-after') => string | undefined,
  list: (flag: 'pod-certificate-namespace') => string[],
  duration: (flag: 'pod-certificate-duration') => number,
  problems: string[],
): PodCertificateConfig {
  const enabledText = get('pod-certificate-signer') ?? 'false';
  if (!['true', 'false'].includes(enabledText))
    problems.push(`--pod-certificate-signer must be true or false, not "${enabledText}"`);
  const durationSeconds = duration('pod-certificate-duration');
  if (durationSeconds > 0 && (durationSeconds < 3600 || durationSeconds > 91 * 24 * 3600))
    problems.push(
      '--pod-certificate-duration must be between 1h (the API minimum for a pod certificate) and 2184h (91 days)',
    );
  const namespaces = list('pod-certificate-namespace');
  for (const ns of namespaces) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns))
      problems.push(`--pod-certificate-namespace "${ns}" is not a valid namespace name`);
  }
  const config: PodCertificateConfig = { enabled: enabledText === 'true', durationSeconds, namespaces };
  // Empty (the chart's default) means the renewal rule.
  const refreshText = get('pod-certificate-refresh-after') ?? '';
  if (refreshText !== '') {
    let refreshAfterSeconds: number;
    try {
      refreshAfterSeconds = parseDuration(refreshText);
    } catch (err) {
      problems.push(`--pod-certificate-refresh-after: ${(err as Error).message}`);
      return config;
    }
    if (refreshAfterSeconds < 600)
      problems.push(
        `--pod-certificate-refresh-after must be at least 10m (the API server refuses a beginRefreshAt earlier than notBefore + 10 min), not "${refreshText}"; leave it empty for the renewal rule`,
      );
    else if (durationSeconds > 0 && refreshAfterSeconds > durationSeconds - 600)
      problems.push(
        `--pod-certificate-refresh-after must be at least 10m shorter than --pod-certificate-duration (the API server refuses a beginRefreshAt later than notAfter - 10 min), not "${refreshText}"`,
      );
    config.refreshAfterSeconds = refreshAfterSeconds;
  }
  return config;
}
