import { SecretVolume, type Files } from '../../hack/lib/secret-volume.ts';
import {
  createSelfSignedCa,
  issueSvid,
  loadCa,
  type IssuedSvid,
  type LoadedCa,
} from '../../src/pki/index.ts';

export const TD = 'mtls.example.org';
export const id = (sa: string, td = TD) => `spiffe://${td}/ns/test/sa/${sa}`;

export { SecretVolume, type Files };

export const filesOf = (s: IssuedSvid): Files => ({
  'tls.crt': s.certChainPem,
  'tls.key': s.keyPem,
  'ca.crt': s.bundlePem,
});

export interface Pki {
  ca: LoadedCa;
  otherCa: LoadedCa;
  issue(sa: string, opts?: { durationSeconds?: number; now?: Date; ca?: LoadedCa }): Promise<IssuedSvid>;
}

export async function makePki(): Promise<Pki> {
  const ca = await loadCa(await createSelfSignedCa({ trustDomain: TD }));
  const otherCa = await loadCa(await createSelfSignedCa({ trustDomain: TD }));
  return {
    ca,
    otherCa,
    issue: (sa, opts = {}) =>
      issueSvid(opts.ca ?? ca, {
        spiffeId: id(sa),
        durationSeconds: opts.durationSeconds ?? 3600,
        now: opts.now,
      }),
  };
}
