// The few DER reads the library needs from a certificate that node:crypto does not expose (the keyUsage
// bits). Bounded: every read checks its length against the buffer, so a malformed certificate is refused.

interface Tlv {
  tag: number;
  start: number; // first content byte
  end: number; // one past the last content byte
}

function read(der: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new RangeError('DER: truncated header');
  const tag = der[offset] as number;
  let length = der[offset + 1] as number;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || start + count > limit) throw new RangeError('DER: bad length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[start + i] as number);
    start += count;
  }
  if (start + length > limit) throw new RangeError('DER: content beyond its parent');
  return { tag, start, end: start + length };
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = read(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

const KEY_USAGE_OID = Buffer.from([0x55, 0x1d, 0x0f]); // 2.5.29.15

/**
 * The keyUsage bits of a DER certificate as a number with bit 0 = digitalSignature ... bit 5 = keyCertSign,
 * bit 6 = cRLSign (RFC 5280 §4.2.1.3 order); undefined when the certificate has no keyUsage extension.
 */
export function keyUsageBits(der: Uint8Array): number | undefined {
  const cert = read(der, 0, der.length);
  const [tbs] = children(der, cert);
  if (!tbs) throw new RangeError('DER: no tbsCertificate');
  const explicit = children(der, tbs).find((c) => c.tag === 0xa3);
  if (!explicit) return undefined;
  const [extensions] = children(der, explicit);
  if (!extensions) return undefined;
  for (const ext of children(der, extensions)) {
    const parts = children(der, ext);
    const oid = parts[0];
    if (!oid || oid.tag !== 0x06) continue;
    if (!Buffer.from(der.subarray(oid.start, oid.end)).equals(KEY_USAGE_OID)) continue;
    const value = parts.at(-1);
    if (!value || value.tag !== 0x04) throw new RangeError('DER: keyUsage without an OCTET STRING');
    const bits = read(der, value.start, value.end);
    if (bits.tag !== 0x03 || bits.end - bits.start < 1)
      throw new RangeError('DER: keyUsage is not a BIT STRING');
    let n = 0;
    // Big-endian bit order: the first content byte after "unused bits" holds bits 0..7 from its MSB.
    for (let i = bits.start + 1, shift = 0; i < bits.end && shift < 16; i++, shift += 8) {
      const byte = der[i] as number;
      for (let b = 0; b < 8; b++) if (byte & (0x80 >> b)) n |= 1 << (shift + b);
    }
    return n;
  }
  return undefined;
}

export const KEY_CERT_SIGN = 1 << 5;
export const CRL_SIGN = 1 << 6;
