import { parseSpiffeId } from '../spiffe/index.ts';
import type { LoadedCa } from './ca.ts';
import { PkiError } from './errors.ts';
import { DEFAULT_KEY, generateKeyPair, type KeySpec } from './keys.ts';
import { signSvidLeaf } from './signer.ts';
import { encodeEcKey } from './ec-encoding.ts';
import { toPem } from './x509.ts';

export interface SvidRequest {
  spiffeId: string;
  dnsNames?: readonly string[];
  durationSeconds: number;
  key?: KeySpec;
  now?: Date;
}

export interface IssuedSvid {
  /** tls.crt: the leaf, then the intermediates up to (not including) the root. */
  certChainPem: string;
  /** tls.key: PKCS#8 PEM of a key generated for this issuance only. */
  keyPem: string;
  /** ca.crt: the trust bundle. */
  bundlePem: string;
  serialNumber: string;
  spiffeId: string;
  notBefore: Date;
  notAfter: Date;
  /** True when notAfter was cut to the CA's own expiry. */
  clampedToCa: boolean;
}

/** How far notBefore is backdated so a peer whose clock is a little behind still accepts the SVID. */
export const CLOCK_SKEW_SECONDS = 60;

/** Issues an X.509-SVID with a fresh key pair. */
export async function issueSvid(ca: LoadedCa, req: SvidRequest): Promise<IssuedSvid> {
  parseSpiffeId(req.spiffeId);
  if (!(req.durationSeconds > 0) || !Number.isFinite(req.durationSeconds)) {
    throw new PkiError(
      'InvalidDuration',
      `the SVID duration must be a positive number of seconds, not ${req.durationSeconds}`,
    );
  }
  const now = req.now ?? new Date();
  if (now >= ca.notAfter) {
    throw new PkiError(
      'CaExpired',
      `the CA certificate expired at ${ca.notAfter.toISOString()}: replace the CA Secret with a valid CA`,
    );
  }
  const notBefore = new Date(Math.max(now.getTime() - CLOCK_SKEW_SECONDS * 1000, ca.notBefore.getTime()));
  const wanted = new Date(Math.floor(now.getTime() / 1000) * 1000 + Math.round(req.durationSeconds * 1000));
  const clampedToCa = wanted > ca.notAfter;
  const notAfter = clampedToCa ? ca.notAfter : wanted;
  const keySpec = req.key ?? DEFAULT_KEY;
  const { privateKey, publicKey } = await generateKeyPair(keySpec);
  const { spki, pkcs8 } =
    keySpec.algorithm === 'ECDSA'
      ? encodeEcKey(privateKey)
      : {
          spki: publicKey.export({ type: 'spki', format: 'der' }),
          pkcs8: privateKey.export({ type: 'pkcs8', format: 'der' }),
        };
  const { leafPem, serial } = signSvidLeaf(ca, {
    spki,
    spiffeId: req.spiffeId,
    dnsNames: req.dnsNames ?? [],
    rsa: keySpec.algorithm === 'RSA',
    notBefore,
    notAfter,
  });
  return {
    certChainPem: leafPem + ca.chainPem,
    keyPem: toPem('PRIVATE KEY', pkcs8),
    bundlePem: ca.trustBundlePem,
    serialNumber: serial.toString('hex'),
    spiffeId: req.spiffeId,
    // Certificates carry whole seconds.
    notBefore: new Date(Math.floor(notBefore.getTime() / 1000) * 1000),
    notAfter: new Date(Math.floor(notAfter.getTime() / 1000) * 1000),
    clampedToCa,
  };
}
