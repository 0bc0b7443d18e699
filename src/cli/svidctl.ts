// svidctl: local development and debugging with the project's own PKI.
//   svidctl ca create --out DIR [--trust-domain TD] [--algorithm A] [--validity D]
//   svidctl issue --ca DIR --trust-domain TD --namespace NS --service-account SA [--dns NAME]...
//                 [--duration D] [--algorithm A] --out DIR
//   svidctl inspect DIR [--ca DIR]
//   svidctl status NAME [-n NAMESPACE] [--kubeconfig FILE]
//   svidctl renew NAME [-n NAMESPACE] [--kubeconfig FILE]
// Every argument is checked before anything is written; a bad one exits 2 with a message.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  chainsTo,
  createSelfSignedCa,
  describeCa,
  issueSvid,
  loadCa,
  parseKeySpec,
  profile,
  svidConformance,
  type Check,
} from '../pki/index.ts';
import type * as k8s from '@kubernetes/client-node';
import { checkDnsNames } from '../policy/index.ts';
import { ClusterUsageError, renew, status } from './identity-commands.ts';
import { BUNDLE_USAGE, bundleCommand, BundleUsageError } from './bundle.ts';
import { formatDuration, parseDuration } from '../renewal/index.ts';
import { buildSpiffeId, validateTrustDomain } from '../spiffe/index.ts';

const USAGE = `usage:
  svidctl ca create --out DIR [--trust-domain TD] [--algorithm A] [--validity DURATION]
      writes a self-signed root CA: DIR/tls.crt, DIR/tls.key, DIR/ca.crt
  svidctl issue --ca DIR --trust-domain TD --namespace NS --service-account SA --out DIR
                [--dns NAME]... [--duration DURATION] [--algorithm A] [--cluster-domain D]
      writes an X.509-SVID for spiffe://TD/ns/NS/sa/SA in the Secret layout (tls.crt, tls.key, ca.crt)
  svidctl inspect DIR [--ca DIR]
      prints the SVID in DIR and checks it (exit 1 when a check fails)
  svidctl status NAME [-n NAMESPACE] [--kubeconfig FILE]
      a WorkloadIdentity's SVID, renewal time, conditions, Secret and last events, from the cluster
  svidctl renew NAME [-n NAMESPACE] [--kubeconfig FILE]
      asks the operator to re-issue the identity's SVID now (the identity.svid.dev/renew-request annotation)
${BUNDLE_USAGE}

  A: ECDSA-256 (default), ECDSA-384, Ed25519, RSA-2048, RSA-3072, RSA-4096
  DURATION: Go style, e.g. 1h, 20m, 1h30m`;

export class UsageError extends Error {}

interface Io {
  out: (line: string) => void;
  now: () => Date;
  kubeConfig?: (file: string | undefined) => k8s.KubeConfig;
}

async function ensureWritable(dir: string): Promise<void> {
  const existing = await readdir(dir).catch(() => []);
  const clash = existing.filter((f) => ['tls.crt', 'tls.key', 'ca.crt'].includes(f));
  if (clash.length > 0) {
    throw new UsageError(`${dir} already holds ${clash.join(', ')}: choose an empty --out directory`);
  }
}

async function writeSet(dir: string, files: { crt: string; key: string; ca: string }): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'tls.key'), files.key, { mode: 0o600 });
  await writeFile(path.join(dir, 'tls.crt'), files.crt);
  await writeFile(path.join(dir, 'ca.crt'), files.ca);
}

function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

function usageFrom<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function caCreate(args: string[], io: Io): Promise<number> {
  const { values } = usageFrom(() =>
    parseArgs({
      args,
      options: {
        out: { type: 'string' },
        'trust-domain': { type: 'string', default: 'cluster.local' },
        algorithm: { type: 'string', default: 'ECDSA-256' },
        validity: { type: 'string', default: '8760h' },
      },
    }),
  );
  const out = required(values, 'out');
  const trustDomain = usageFrom(() => validateTrustDomain(values['trust-domain'] ?? ''));
  const key = usageFrom(() => parseKeySpec(values.algorithm ?? ''));
  const validitySeconds = usageFrom(() => parseDuration(values.validity ?? ''));
  if (validitySeconds < 3600) throw new UsageError('--validity must be at least 1h');
  await ensureWritable(out);
  const ca = await createSelfSignedCa({ trustDomain, key, validitySeconds, now: io.now() });
  await writeSet(out, { crt: ca.certPem, key: ca.keyPem, ca: ca.certPem });
  io.out(`wrote a self-signed root CA for ${trustDomain} to ${out} (tls.crt, tls.key, ca.crt)`);
  return 0;
}

async function readCaDir(dir: string): Promise<{ certPem: string; keyPem: string; bundlePem?: string }> {
  const read = (f: string) => readFile(path.join(dir, f), 'utf8').catch(() => undefined);
  const [certPem, keyPem, bundlePem] = await Promise.all([read('tls.crt'), read('tls.key'), read('ca.crt')]);
  if (certPem === undefined || keyPem === undefined) {
    throw new UsageError(`--ca ${dir} must hold tls.crt and tls.key (svidctl ca create writes them)`);
  }
  return { certPem, keyPem, bundlePem };
}

async function issue(args: string[], io: Io): Promise<number> {
  const { values } = usageFrom(() =>
    parseArgs({
      args,
      options: {
        ca: { type: 'string' },
        'trust-domain': { type: 'string' },
        namespace: { type: 'string' },
        'service-account': { type: 'string' },
        dns: { type: 'string', multiple: true, default: [] },
        duration: { type: 'string', default: '1h' },
        algorithm: { type: 'string', default: 'ECDSA-256' },
        'cluster-domain': { type: 'string', default: 'cluster.local' },
        out: { type: 'string' },
      },
    }),
  );
  const caDir = required(values, 'ca');
  const out = required(values, 'out');
  const namespace = required(values, 'namespace');
  const spiffeId = usageFrom(() =>
    buildSpiffeId(required(values, 'trust-domain'), namespace, required(values, 'service-account')),
  );
  const dnsNames = values.dns ?? [];
  const violations = checkDnsNames(dnsNames, {
    namespace,
    clusterDomain: values['cluster-domain'] ?? 'cluster.local',
    allowedPatterns: [],
  });
  if (violations.length > 0) throw new UsageError(violations.map((v) => v.message).join('\n'));
  const durationSeconds = usageFrom(() => parseDuration(values.duration ?? ''));
  if (durationSeconds <= 0) throw new UsageError('--duration must be positive');
  const key = usageFrom(() => parseKeySpec(values.algorithm ?? ''));
  const ca = await loadCa(await readCaDir(caDir), {
    now: io.now(),
    trustDomain: required(values, 'trust-domain'),
  }).catch((err: Error) => {
    throw new UsageError(`--ca ${caDir}: ${err.message}`);
  });
  await ensureWritable(out);
  const svid = await issueSvid(ca, { spiffeId, dnsNames, durationSeconds, key, now: io.now() });
  await writeSet(out, { crt: svid.certChainPem, key: svid.keyPem, ca: svid.bundlePem });
  io.out(
    `wrote ${spiffeId} to ${out}: serial ${svid.serialNumber}, valid until ${svid.notAfter.toISOString()}`,
  );
  for (const w of ca.warnings) io.out(`warning: --ca ${caDir}: ${w}`);
  if (svid.clampedToCa)
    io.out(`note: the lifetime was cut to the CA's expiry (${ca.notAfter.toISOString()})`);
  return 0;
}

async function inspect(args: string[], io: Io): Promise<number> {
  const { values, positionals } = usageFrom(() =>
    parseArgs({ args, allowPositionals: true, options: { ca: { type: 'string' } } }),
  );
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError('inspect takes exactly one directory');
  const read = (f: string) => readFile(path.join(dir, f), 'utf8').catch(() => undefined);
  const [crt, key, bundle] = await Promise.all([read('tls.crt'), read('tls.key'), read('ca.crt')]);
  if (crt === undefined && key === undefined && bundle === undefined) {
    throw new UsageError(`${dir} holds none of tls.crt, tls.key, ca.crt`);
  }
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  let leaf: X509Certificate | undefined;
  try {
    leaf = new X509Certificate(crt ?? '');
    add('tls.crt parses', true, 'ok');
  } catch {
    add('tls.crt parses', false, crt === undefined ? 'missing' : 'not a PEM certificate');
  }
  if (leaf) {
    const p = profile(leaf);
    const notAfter = new Date(leaf.validTo);
    const notBefore = new Date(leaf.validFrom);
    const lifetime = (notAfter.getTime() - notBefore.getTime()) / 1000;
    io.out(`SPIFFE ID:   ${p.uris.join(', ') || '(none)'}`);
    io.out(`DNS names:   ${p.dnsNames.join(', ') || '(none)'}`);
    io.out(`serial:      ${leaf.serialNumber.toLowerCase()}`);
    io.out(`not before:  ${notBefore.toISOString()}`);
    io.out(
      `not after:   ${notAfter.toISOString()} (${formatDuration(Math.max(0, (notAfter.getTime() - io.now().getTime()) / 1000))} left)`,
    );
    io.out(
      `renewal:     ${new Date(notAfter.getTime() - (lifetime / 3) * 1000).toISOString()} (default renewBefore = lifetime/3, before per-identity jitter)`,
    );
    try {
      add('tls.key matches tls.crt', leaf.checkPrivateKey(createPrivateKey(key ?? '')), 'ok');
    } catch {
      add('tls.key matches tls.crt', false, key === undefined ? 'missing' : 'not a PEM private key');
    }
    const now = io.now();
    add(
      'valid now',
      now >= notBefore && now < notAfter,
      now < notBefore ? 'not yet valid' : now >= notAfter ? 'expired' : 'ok',
    );
    const chain = (crt ?? '')
      .split(/(?=-----BEGIN CERTIFICATE-----)/)
      .slice(1)
      .map((c) => new X509Certificate(c));
    const roots = (bundle ?? '')
      .split(/(?=-----BEGIN CERTIFICATE-----)/)
      .filter((c) => c.includes('BEGIN'))
      .map((c) => new X509Certificate(c));
    add(
      'chains to ca.crt',
      roots.length > 0 && chainsTo(leaf, chain, roots),
      roots.length === 0 ? 'no ca.crt' : 'ok',
    );
    for (const c of svidConformance(leaf)) checks.push(c);
    if (values.ca) {
      const ca = await loadCa(await readCaDir(values.ca)).catch((err: Error) => {
        throw new UsageError(`--ca ${values.ca}: ${err.message}`);
      });
      add(
        'issued by --ca',
        leaf.checkIssued(ca.certificate) && leaf.verify(ca.certificate.publicKey),
        describeCa(ca),
      );
    }
  }
  io.out('checks:');
  for (const c of checks) io.out(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.ok ? '' : ` (${c.detail})`}`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

export async function svidctl(
  argv: string[],
  io: Io = { out: console.log, now: () => new Date() },
): Promise<number> {
  const [command, sub, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  if (command === 'ca' && sub === 'create') return caCreate(rest, io);
  if (command === 'issue') return issue(argv.slice(1), io);
  if (command === 'inspect') return inspect(argv.slice(1), io);
  if (command === 'status' || command === 'renew') {
    try {
      return await (command === 'status' ? status : renew)(argv.slice(1), io);
    } catch (err) {
      if (err instanceof ClusterUsageError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (command === 'bundle') return bundleCommand(argv.slice(1), io.out).catch(asUsage);
  throw new UsageError(`unknown command "${[command, sub].filter(Boolean).join(' ')}"`);
}

function asUsage(err: unknown): never {
  throw err instanceof BundleUsageError ? new UsageError(err.message) : err;
}

export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await svidctl(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`svidctl: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    console.error(`svidctl: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
