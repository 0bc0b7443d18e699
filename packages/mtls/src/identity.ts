// Reading SPIFFE IDs of certificates and TLS peers.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { parseSubjectAltName } from './san.ts';
import { isSpiffeId } from './spiffe-id.ts';

/** The SPIFFE ID of a certificate: its one URI SAN if that is a valid SPIFFE ID; else undefined. */
export function spiffeIdOf(cert: X509Certificate | PeerCertificate | undefined): string | undefined {
  if (!cert) return undefined;
  const san = cert instanceof X509Certificate ? cert.subjectAltName : cert.subjectaltname;
  const uris = parseSubjectAltName(san).filter((e) => e.type === 'URI');
  return uris.length === 1 && isSpiffeId(uris[0]?.value ?? '') ? uris[0]?.value : undefined;
}
