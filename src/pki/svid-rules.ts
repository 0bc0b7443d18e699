import type { X509Certificate } from 'node:crypto';
import { isSpiffeId } from '../spiffe/index.ts';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, KeyUsageFlags, profile } from './x509.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * X.509-SVID §3.1: "The Subject field is not required, however the URI SAN extension MUST be marked as
 * critical if Subject is omitted, per section 4.1.2.6 of RFC 5280."
 */
export function subjectCheck(leaf: { subject?: string; subjectAltNameCritical: boolean }): Check {
  // node:crypto gives `undefined` (not '') for an empty subject.
  const empty = (leaf.subject ?? '').trim() === '';
  return {
    name: 'empty subject only with a critical SAN',
    ok: !empty || leaf.subjectAltNameCritical,
    detail: empty
      ? `empty subject, SAN ${leaf.subjectAltNameCritical ? 'critical' : 'not critical'}`
      : (leaf.subject ?? ''),
  };
}

/** The X.509-SVID specification's rules for a leaf (§4, §5), each as a named check. */
export function svidConformance(leaf: X509Certificate): Check[] {
  const p = profile(leaf);
  const ku = p.keyUsage ?? 0;
  const serialBits = BigInt(`0x${leaf.serialNumber}`).toString(2).length;
  const rsa = leaf.publicKey.asymmetricKeyType === 'rsa';
  return [
    {
      name: 'one URI SAN, a SPIFFE ID',
      ok: p.uris.length === 1 && isSpiffeId(p.uris[0] ?? ''),
      detail: p.uris.length === 0 ? 'no URI SAN' : p.uris.join(', '),
    },
    { name: 'basicConstraints CA:false', ok: p.isCa !== true, detail: p.isCa ? 'CA:TRUE' : 'CA:FALSE' },
    {
      name: 'keyUsage digitalSignature, critical',
      ok: p.keyUsageCritical && (ku & KeyUsageFlags.digitalSignature) !== 0,
      detail:
        p.keyUsage === undefined
          ? 'no keyUsage'
          : `0x${ku.toString(16)}${p.keyUsageCritical ? ' critical' : ''}`,
    },
    {
      name: 'no keyCertSign or cRLSign',
      ok: (ku & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) === 0,
      detail: (ku & KeyUsageFlags.keyCertSign) !== 0 ? 'keyCertSign set' : 'ok',
    },
    {
      name: 'keyEncipherment only for RSA',
      ok: rsa || (ku & KeyUsageFlags.keyEncipherment) === 0,
      detail: rsa ? 'RSA key' : 'non-RSA key',
    },
    {
      name: 'extKeyUsage serverAuth and clientAuth',
      ok: !!p.extKeyUsage?.includes(EKU_SERVER_AUTH) && p.extKeyUsage.includes(EKU_CLIENT_AUTH),
      detail: (p.extKeyUsage ?? []).join(', ') || 'none',
    },
    { name: 'serial number at least 64 bits', ok: serialBits >= 64, detail: `${serialBits} bits` },
    subjectCheck({ subject: leaf.subject, subjectAltNameCritical: p.subjectAltNameCritical }),
  ];
}
