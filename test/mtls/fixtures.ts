import { once } from 'node:events';
import type { Svid, SvidSource } from '@svid-operator/mtls';
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

/** Resolves with the next SVID `source` adopts. */
export const updated = (source: SvidSource): Promise<Svid> =>
  once(source, 'update').then(([svid]) => svid as Svid);

/** One side of a connection: the source it reads and the volume that source watches. */
export interface Side {
  source: SvidSource;
  volume: SecretVolume;
}

/**
 * Turn `turn` of an alternating rotation: even turns re-issue the client's SVID, odd turns the server's.
 * Resolves once that side's source has adopted the new SVID, with which side it was.
 */
export async function rotateAlternately(
  pki: Pki,
  turn: number,
  sides: { client: Side; server: Side },
): Promise<{ rotateClient: boolean; next: IssuedSvid }> {
  const rotateClient = turn % 2 === 0;
  const side = rotateClient ? sides.client : sides.server;
  const next = await pki.issue(rotateClient ? 'client' : 'server');
  const adopted = updated(side.source);
  await side.volume.swap(filesOf(next));
  await adopted;
  return { rotateClient, next };
}
