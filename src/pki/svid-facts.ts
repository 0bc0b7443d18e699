// What verification needs to know about the certificate chain and key in a Secret, found by parsing them
// once. verifySvid used to parse tls.crt and tls.key and read the leaf's extensions twice with
// @peculiar/asn1-schema on every reconcile, and a first issuance triggers about three (its own Secret and
// status writes come back through the watches): at a 1,000-identity wave that was most of the operator's
// CPU. The facts are small and plain, so they can be remembered per content (see content-memo.ts), and the
// operator can state them for an SVID it has just issued without parsing it at all (issuedSvidFacts).
import type { X509Certificate } from 'node:crypto';
import type { LoadedCa } from './ca.ts';
import { PkiError } from './errors.ts';
import type { IssuedSvid } from './issue.ts';
import { describeKey, type KeySpec } from './keys.ts';
import { svidConformance } from './svid-rules.ts';
import { parseCertificates, parsePrivateKey, pemOf, profile } from './x509.ts';

/** The facts of one certificate chain and key, judged against one CA (its certificate and chain). */
export type SvidFacts =
  /** tls.crt or tls.key cannot be read: the message says which and why. */
  | { kind: 'corrupt'; message: string }
  | {
      kind: 'parsed';
      /** tls.key belongs to the leaf in tls.crt. */
      keyMatches: boolean;
      /** The leaf names the CA as issuer and its signature verifies with the CA's key. */
      issuedByCa: boolean;
      /** The certificates after the leaf are exactly the CA's chain. */
      chainMatches: boolean;
      /** The X.509-SVID rules the leaf breaks (their names), or why its extensions cannot be read. */
      nonConformant: readonly string[] | { code: string; message: string };
      spiffeId: string | undefined;
      dnsNames: readonly string[];
      keySpec: KeySpec | undefined;
      /** Lowercase hex, as node:crypto prints it. */
      serialNumber: string;
      /** Milliseconds since the epoch (certificates carry whole seconds). */
      notBefore: number;
      notAfter: number;
    };

/** Parses tls.crt and tls.key (both present) and judges them against `ca`: the expensive part of verifySvid. */
export function inspectSvid(certChainPem: string, keyPem: string, ca: LoadedCa): SvidFacts {
  let certs: X509Certificate[];
  let keyMatches: boolean;
  try {
    certs = parseCertificates(certChainPem, 'tls.crt', 'Corrupt');
    const key = parsePrivateKey(keyPem, 'tls.key', 'Corrupt');
    keyMatches = (certs[0] as X509Certificate).checkPrivateKey(key);
  } catch (err) {
    if (err instanceof PkiError) return { kind: 'corrupt', message: err.message };
    throw err;
  }
  const leaf = certs[0] as X509Certificate;
  const issuedByCa = leaf.checkIssued(ca.certificate) && leaf.verify(ca.certificate.publicKey);
  const chainMatches = certs.slice(1).map(pemOf).join('') === ca.chainPem;
  let nonConformant: readonly string[] | { code: string; message: string };
  let spiffeId: string | undefined;
  let dnsNames: readonly string[] = [];
  try {
    const broken = svidConformance(leaf)
      .filter((c) => !c.ok)
      .map((c) => c.name);
    nonConformant = broken.length === 0 ? NONE : broken;
    const p = profile(leaf);
    spiffeId = p.uris[0];
    dnsNames = p.dnsNames.length === 0 ? NONE : p.dnsNames;
  } catch (err) {
    if (!(err instanceof PkiError)) throw err;
    nonConformant = { code: err.code, message: err.message };
  }
  return {
    kind: 'parsed',
    keyMatches,
    issuedByCa,
    chainMatches,
    nonConformant,
    spiffeId,
    dnsNames,
    keySpec: keySpecOf(describeKey(leaf.publicKey)),
    serialNumber: leaf.serialNumber.toLowerCase(),
    notBefore: new Date(leaf.validFrom).getTime(),
    notAfter: new Date(leaf.validTo).getTime(),
  };
}

// The facts are remembered per managed Secret for the process's life (svid-memory.ts): the values most of
// them share are held once (an empty list, the few key types), not once per Secret. Both are frozen.
const NONE: readonly string[] = Object.freeze([]);
const keySpecs = new Map<string, KeySpec>();
const keySpecOf = (spec: KeySpec | undefined) => spec && sharedKeySpec(spec);
function sharedKeySpec(spec: KeySpec): KeySpec {
  const id = `${spec.algorithm}/${'size' in spec ? spec.size : ''}`;
  let shared = keySpecs.get(id);
  if (!shared) keySpecs.set(id, (shared = Object.freeze({ ...spec })));
  return shared;
}

/**
 * The facts of an SVID this process has just issued from `ca` with `issueSvid`, without parsing it: the
 * signer applies the X.509-SVID profile and signs with the CA's key, and the chain is the CA's own. A unit
 * test checks that these equal what inspectSvid reads back from the same SVID.
 */
export function issuedSvidFacts(svid: IssuedSvid, dnsNames: readonly string[], keySpec: KeySpec): SvidFacts {
  return {
    kind: 'parsed',
    keyMatches: true,
    issuedByCa: true,
    chainMatches: true,
    nonConformant: NONE,
    spiffeId: svid.spiffeId,
    dnsNames: dnsNames.length === 0 ? NONE : [...dnsNames],
    keySpec: sharedKeySpec(keySpec),
    serialNumber: svid.serialNumber.toLowerCase(),
    notBefore: svid.notBefore.getTime(),
    notAfter: svid.notAfter.getTime(),
  };
}
