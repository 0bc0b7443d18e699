import { renewalTime } from '../renewal/index.ts';
import type { LoadedCa } from './ca.ts';
import { PkiError } from './errors.ts';
import { CLOCK_SKEW_SECONDS } from './issue.ts';
import { formatKeySpec, sameKeySpec, type KeySpec } from './keys.ts';
import { inspectSvid, type SvidFacts } from './svid-facts.ts';
import { parseCertificates } from './x509.ts';

export interface SecretSvid {
  certChainPem?: string;
  keyPem?: string;
  bundlePem?: string;
}

export interface ExpectedSvid {
  spiffeId: string;
  dnsNames: readonly string[];
  key: KeySpec;
  durationSeconds: number;
  renewBeforeSeconds: number;
  uid: string;
}

export type ReissueReason =
  | 'Missing'
  | 'Corrupt'
  | 'KeyMismatch'
  | 'WrongIssuer'
  | 'BundleChanged'
  | 'NotConformant'
  | 'SpecChanged'
  | 'Expiring';

export type SvidDecision =
  | { action: 'keep'; renewalTime: Date; serialNumber: string; notBefore: Date; notAfter: Date }
  | { action: 'issue'; reason: ReissueReason; message: string };

const issue = (reason: ReissueReason, message: string): SvidDecision => ({
  action: 'issue',
  reason,
  message,
});
const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

/**
 * Whether the SVID in a Secret can stay, and until when; or why it must be reissued. The order of the
 * checks is the order of the DESIGN's renewal rules: missing, corrupt, key mismatch, wrong CA, spec change,
 * renewal time.
 */
export function verifySvid(
  secret: SecretSvid,
  expected: ExpectedSvid,
  ca: LoadedCa,
  opts: {
    now?: Date;
    /** What inspectSvid found in this Secret's tls.crt and tls.key against `ca` (e.g. remembered). */
    facts?: SvidFacts;
  } = {},
): SvidDecision {
  const now = opts.now ?? new Date();
  // Facts are only ever found in (or stated for) a present tls.crt and tls.key, so with facts given those
  // two need not be held (a cache may have dropped them once their facts were known, see slim.ts).
  const held = opts.facts ? (['bundlePem'] as const) : (['certChainPem', 'keyPem', 'bundlePem'] as const);
  const missing = held.filter((k) => !secret[k]?.trim());
  if (missing.length > 0) {
    const files = missing.map(
      (k) => ({ certChainPem: 'tls.crt', keyPem: 'tls.key', bundlePem: 'ca.crt' })[k],
    );
    return issue('Missing', `the Secret has no ${files.join(', ')}`);
  }
  const facts = opts.facts ?? inspectSvid(secret.certChainPem as string, secret.keyPem as string, ca);
  if (facts.kind === 'corrupt') return issue('Corrupt', facts.message);
  // The trust bundle the CA itself publishes was parsed when the CA was loaded.
  if (secret.bundlePem !== ca.trustBundlePem) {
    try {
      parseCertificates(secret.bundlePem, 'ca.crt', 'Corrupt');
    } catch (err) {
      if (err instanceof PkiError) return issue('Corrupt', err.message);
      throw err;
    }
  }
  if (!facts.keyMatches) {
    return issue('KeyMismatch', 'tls.key does not belong to the certificate in tls.crt');
  }
  if (!facts.issuedByCa) {
    return issue('WrongIssuer', `the certificate was not issued by the current CA (${ca.subject})`);
  }
  if (!facts.chainMatches) {
    return issue('WrongIssuer', 'the certificate chain in tls.crt is not the current CA chain');
  }
  if (secret.bundlePem !== ca.trustBundlePem) {
    return issue('BundleChanged', 'ca.crt is not the current trust bundle');
  }
  const failed = facts.nonConformant;
  if (!Array.isArray(failed)) {
    const e = failed as { code: string; message: string };
    throw new PkiError(e.code, e.message);
  }
  if (failed.length > 0) {
    return issue('NotConformant', `the certificate breaks the X.509-SVID rules: ${failed.join('; ')}`);
  }
  if (facts.spiffeId !== expected.spiffeId) {
    return issue('SpecChanged', `the SPIFFE ID changed from ${facts.spiffeId} to ${expected.spiffeId}`);
  }
  if (!sameSet(facts.dnsNames, expected.dnsNames)) {
    return issue(
      'SpecChanged',
      `the DNS names changed from [${facts.dnsNames.join(', ')}] to [${expected.dnsNames.join(', ')}]`,
    );
  }
  const keySpec = facts.keySpec;
  if (!keySpec || !sameKeySpec(keySpec, expected.key)) {
    return issue(
      'SpecChanged',
      `the key type changed from ${keySpec ? formatKeySpec(keySpec) : 'an unsupported key'} to ${formatKeySpec(expected.key)}`,
    );
  }
  const notBefore = new Date(facts.notBefore);
  const notAfter = new Date(facts.notAfter);
  const clamped = notAfter.getTime() === ca.notAfter.getTime();
  const issuedSeconds = (notAfter.getTime() - notBefore.getTime()) / 1000;
  // notBefore is backdated by up to CLOCK_SKEW_SECONDS (less when clamped to the CA's own notBefore).
  const requested = expected.durationSeconds;
  if (!clamped && (issuedSeconds < requested - 1 || issuedSeconds > requested + CLOCK_SKEW_SECONDS + 1)) {
    return issue(
      'SpecChanged',
      `the lifetime changed to ${requested}s (the certificate has ${Math.round(issuedSeconds)}s)`,
    );
  }
  const renewAt = renewalTime(notAfter, expected.renewBeforeSeconds, expected.uid);
  if (now >= renewAt) {
    return issue(
      'Expiring',
      now >= notAfter
        ? `the certificate expired at ${notAfter.toISOString()}`
        : `renewal was due at ${renewAt.toISOString()}`,
    );
  }
  return {
    action: 'keep',
    renewalTime: renewAt,
    serialNumber: facts.serialNumber,
    notBefore,
    notAfter,
  };
}
