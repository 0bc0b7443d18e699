// svidctl bundle: the trust bundle a CA directory gives workloads (the CA's roots, ca.crt's roots, extra
// roots), as PEM (what ca.crt and the ClusterTrustBundle hold) or as the SPIFFE bundle JWKS (what
// bundle.spiffe holds), e.g. for federation with another trust domain.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadCa } from '../pki/index.ts';
import { parseDuration } from '../renewal/index.ts';
import { nextSpiffeBundle } from '../trust/spiffe-bundle.ts';

export const BUNDLE_USAGE = `  svidctl bundle --ca DIR [--format pem|spiffe] [--extra-roots FILE] [--sequence N] [--refresh-hint DURATION]
      prints the trust bundle of the CA in DIR: PEM (ca.crt) or the SPIFFE bundle JWKS (bundle.spiffe)`;

export class BundleUsageError extends Error {}

export async function bundleCommand(args: string[], out: (line: string) => void): Promise<number> {
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        ca: { type: 'string' },
        format: { type: 'string', default: 'pem' },
        'extra-roots': { type: 'string' },
        sequence: { type: 'string', default: '1' },
        'refresh-hint': { type: 'string', default: '5m' },
      },
      strict: true,
    }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new BundleUsageError((err as Error).message);
  }
  const dir = values.ca;
  if (!dir) throw new BundleUsageError('--ca is required (a directory with tls.crt and tls.key)');
  const format = values.format ?? 'pem';
  if (format !== 'pem' && format !== 'spiffe') {
    throw new BundleUsageError(`--format must be pem or spiffe, not "${format}"`);
  }
  const sequence = Number(values.sequence);
  if (!Number.isSafeInteger(sequence) || sequence < 1) {
    throw new BundleUsageError(`--sequence must be a positive integer, not "${values.sequence}"`);
  }
  let hint: number;
  try {
    hint = Math.round(parseDuration(values['refresh-hint'] ?? '5m'));
  } catch (err) {
    throw new BundleUsageError(`--refresh-hint: ${(err as Error).message}`);
  }
  if (hint < 1) throw new BundleUsageError('--refresh-hint must be at least 1s');
  const read = (f: string) => readFile(path.join(dir, f), 'utf8').catch(() => undefined);
  const [certPem, keyPem, bundlePem] = await Promise.all([read('tls.crt'), read('tls.key'), read('ca.crt')]);
  if (certPem === undefined || keyPem === undefined) {
    throw new BundleUsageError(`--ca ${dir} must hold tls.crt and tls.key (svidctl ca create writes them)`);
  }
  const extraRootsPem = values['extra-roots'] ? await readFile(values['extra-roots'], 'utf8') : undefined;
  const ca = await loadCa({ certPem, keyPem, bundlePem }, { extraRootsPem });
  if (format === 'pem') {
    out(ca.trustBundlePem.trimEnd());
    return 0;
  }
  // nextSpiffeBundle counts from a previous bundle; a fresh one with the wanted sequence is one step on.
  const bundle = nextSpiffeBundle(
    ca.trustBundlePem,
    { keys: [], spiffe_sequence: sequence - 1, spiffe_refresh_hint: 0 },
    hint,
  );
  out(JSON.stringify(bundle, null, 2));
  return 0;
}
