// The few DER encodings the signer needs. Issuing builds the TBSCertificate from bytes rather than
// through an ASN.1 object model: per SVID only the serial, validity, key and SANs change, and the object
// model made signing ten times slower than key generation (see bench/). Reading extensions is `@svid-operator/mtls/der`.

/** One DER element, written into a single buffer: this runs a few dozen times per issued certificate. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  let length = 0;
  for (const c of content) length += c.length;
  const lengthBytes = length < 0x80 ? 0 : length < 0x100 ? 1 : length < 0x10000 ? 2 : 3;
  if (length >= 0x1000000) throw new RangeError('DER element longer than 16 MiB');
  const out = Buffer.allocUnsafe(2 + lengthBytes + length);
  out[0] = tag;
  let offset = 1;
  if (lengthBytes === 0) out[offset++] = length;
  else {
    out[offset++] = 0x80 | lengthBytes;
    for (let i = lengthBytes - 1; i >= 0; i--) out[offset++] = (length >> (8 * i)) & 0xff;
  }
  for (const c of content) {
    c.copy(out, offset);
    offset += c.length;
  }
  return out;
}

export const sequence = (...content: Buffer[]): Buffer => tlv(0x30, ...content);
export const set = (...content: Buffer[]): Buffer => tlv(0x31, ...content);
export const octetString = (content: Buffer): Buffer => tlv(0x04, content);
const UNUSED_BITS = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => Buffer.from([n]));
export const bitString = (content: Buffer, unusedBits = 0): Buffer =>
  tlv(0x03, UNUSED_BITS[unusedBits] ?? Buffer.from([unusedBits]), content);
export const contextExplicit = (n: number, ...content: Buffer[]): Buffer => tlv(0xa0 + n, ...content);
export const contextPrimitive = (n: number, content: Buffer): Buffer => tlv(0x80 + n, content);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const NULL = Buffer.from([0x05, 0x00]);
export const TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** A non-negative INTEGER from big-endian magnitude bytes, minimally encoded. */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return tlv(0x02, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [part & 0x7f];
    for (let n = Math.floor(part / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift(0x80 | (n & 0x7f));
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime through 2049 and GeneralizedTime from 2050, as RFC 5280 §4.1.2.5 requires; whole seconds. */
export function time(date: Date): Buffer {
  const iso = date.toISOString();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'))
    : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

/** Header length and content length of the DER element at `offset`. */
export function readHeader(der: Buffer, offset: number): { header: number; length: number } {
  const first = der[offset + 1] ?? 0;
  if (first < 0x80) return { header: 2, length: first };
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (der[offset + 2 + i] ?? 0);
  return { header: 2 + count, length };
}

/**
 * The subjectPublicKey bits of a DER SubjectPublicKeyInfo (SEQUENCE { AlgorithmIdentifier, BIT STRING }),
 * without the unused-bits byte: the input to the key identifier (RFC 5280 §4.2.1.2 method 1).
 */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const outer = readHeader(spki, 0);
  const algOffset = outer.header;
  const alg = readHeader(spki, algOffset);
  const bitOffset = algOffset + alg.header + alg.length;
  const bits = readHeader(spki, bitOffset);
  return spki.subarray(bitOffset + bits.header + 1, bitOffset + bits.header + bits.length);
}
