// SVIDs as the Workload API carries them (DER), from the project's PKI fixtures.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { X509SvidMessage } from '../../packages/mtls/src/workload-api/messages.ts';
import type { IssuedSvid } from '../../src/pki/index.ts';

const certsDer = (pem: string) =>
  Buffer.concat(
    (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
      (c) => new X509Certificate(c).raw,
    ),
  );

export function svidMessage(s: IssuedSvid, hint = ''): X509SvidMessage {
  return {
    spiffeId: s.spiffeId,
    x509Svid: certsDer(s.certChainPem),
    x509SvidKey: createPrivateKey(s.keyPem).export({ format: 'der', type: 'pkcs8' }),
    bundle: certsDer(s.bundlePem),
    hint,
  };
}

export { certsDer };
