// Operator configuration from flags (controller-runtime style names) and environment variables (flags
// win), validated before anything starts; every problem is reported at once with how to fix it.
import { parseArgs } from 'node:util';
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
  apiQps: number;
  issuanceRate: number;
  resyncSeconds: number;
  extraTrustRootsFile?: string;
  caOverlapSeconds: number;
  logLevel: string;
}

export class ConfigError extends Error {}

/** Each option: its flag, its environment variable, and its default. */
const OPTIONS = {
  'trust-domain': { env: 'SVID_TRUST_DOMAIN', default: undefined },
  'ca-secret': { env: 'SVID_CA_SECRET', default: undefined },
  'cluster-domain': { env: 'SVID_CLUSTER_DOMAIN', default: 'cluster.local' },
  'min-duration': { env: 'SVID_MIN_DURATION', default: '10m' },
  'max-duration': { env: 'SVID_MAX_DURATION', default: '24h' },
  'allowed-dns-pattern': { env: 'SVID_ALLOWED_DNS_PATTERNS', default: undefined, multiple: true },
  'watch-namespace': { env: 'SVID_WATCH_NAMESPACES', default: undefined, multiple: true },
  'leader-elect': { env: 'SVID_LEADER_ELECT', default: 'false' },
  'leader-election-namespace': { env: 'POD_NAMESPACE', default: undefined },
  'leader-election-id': { env: 'SVID_LEADER_ELECTION_ID', default: 'svid-operator' },
  'metrics-bind-address': { env: 'SVID_METRICS_BIND_ADDRESS', default: ':8080' },
  'health-probe-bind-address': { env: 'SVID_HEALTH_PROBE_BIND_ADDRESS', default: ':8081' },
  concurrency: { env: 'SVID_CONCURRENCY', default: '8' },
  'api-qps': { env: 'SVID_API_QPS', default: '100' },
  'issuance-rate': { env: 'SVID_ISSUANCE_RATE', default: '10' },
  'resync-period': { env: 'SVID_RESYNC_PERIOD', default: '10m' },
  'extra-trust-roots': { env: 'SVID_EXTRA_TRUST_ROOTS', default: undefined },
  'ca-overlap': { env: 'SVID_CA_OVERLAP', default: '1h' },
  'log-level': { env: 'SVID_LOG_LEVEL', default: 'info' },
} as const;

export const USAGE = `usage: svid-operator --trust-domain TD --ca-secret NAMESPACE/NAME [flags]
${Object.entries(OPTIONS)
  .map(
    ([flag, o]) =>
      `  --${flag}${'multiple' in o ? ' (repeatable)' : ''}  env ${o.env}${o.default ? `, default ${o.default}` : ''}`,
  )
  .join('\n')}`;

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): OperatorConfig {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(OPTIONS).map(([flag, o]) => [flag, { type: 'string', multiple: 'multiple' in o }]),
      ),
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n${USAGE}`);
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
  const leaderElectionNamespace = get('leader-election-namespace') ?? caNs ?? '';
  const logLevel = get('log-level') ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel))
    problems.push(`--log-level must be error, warn, info or debug`);
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
    apiQps: number('api-qps', 1),
    issuanceRate: number('issuance-rate', 0.1),
    resyncSeconds: resyncPeriod(),
    extraTrustRootsFile: get('extra-trust-roots'),
    caOverlapSeconds: duration('ca-overlap'),
    logLevel,
  };
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
