// A strict DER reader for the few X.509 structures node:crypto does not expose: the extensions of a
// certificate and the contents of basicConstraints, keyUsage, extKeyUsage, subjectAltName and
// subjectKeyIdentifier, and the element walk the Workload API's concatenated certificates are split with.
// One reader for the library (peer and own SVID rules: keyUsage) and the operator (`@svid-operator/mtls/der`:
// profile() reads every extension with it, instead of @peculiar/asn1-x509, whose module graph cost the idle
// operator ~2 MB). Input is untrusted (a peer's certificate, a Workload API answer, a Secret anyone with write
// access may change): every length is checked against its enclosing element, and anything that is not what
// the structure allows is a DerError, never a RangeError or a silent misread.

export class DerError extends Error {}

/** One element: its tag byte and where its contents are. */
export interface Element {
  tag: number;
  start: number;
  end: number;
}

/** The element at `offset`, which must end at or before `limit`. */
export function readElement(der: Uint8Array, offset: number, limit: number): Element {
  if (offset + 2 > limit) throw new DerError('element header runs past its end');
  const tag = der[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in these structures');
  const first = der[offset + 1] as number;
  let length = first;
  let start = offset + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0) throw new DerError('indefinite length is not DER');
    if (count > 4) throw new DerError('length of more than 4 bytes');
    if (start + count > limit) throw new DerError('length runs past its end');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[start + i] as number);
    if (length < 0x80 || (der[start] as number) === 0) throw new DerError('length is not minimally encoded');
    start += count;
  }
  if (start + length > limit) throw new DerError('contents run past the end of the enclosing element');
  return { tag, start, end: start + length };
}

/** The elements inside a constructed element, in order. */
export function children(der: Uint8Array, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = readElement(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

/** The one element `der` holds, with no bytes after it; of the expected tag. */
export function single(der: Uint8Array, tag: number): Element {
  const e = readElement(der, 0, der.length);
  if (e.end !== der.length) throw new DerError('bytes after the element');
  expectTag(e, tag);
  return e;
}

function expectTag(e: Element, tag: number): void {
  if (e.tag !== tag) throw new DerError(`tag 0x${e.tag.toString(16)} where 0x${tag.toString(16)} belongs`);
}

const SEQUENCE = 0x30;
const BOOLEAN = 0x01;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;

/** A DER OBJECT IDENTIFIER's contents as dotted decimal. */
export function readOid(der: Uint8Array, e: Element): string {
  expectTag(e, OID);
  if (e.end === e.start) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  let fresh = true;
  for (let i = e.start; i < e.end; i++) {
    const b = der[i] as number;
    if (fresh && b === 0x80) throw new DerError('OBJECT IDENTIFIER arc is not minimally encoded');
    if (value > 2 ** 45) throw new DerError('OBJECT IDENTIFIER arc too large');
    value = value * 128 + (b & 0x7f);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      arcs.push(value);
      value = 0;
    }
  }
  if (!fresh) throw new DerError('OBJECT IDENTIFIER ends inside an arc');
  const head = arcs[0] as number;
  const first = head < 40 ? 0 : head < 80 ? 1 : 2;
  return [first, head - 40 * first, ...arcs.slice(1)].join('.');
}

function readBoolean(der: Uint8Array, e: Element): boolean {
  expectTag(e, BOOLEAN);
  if (e.end - e.start !== 1) throw new DerError('BOOLEAN of other than one byte');
  const b = der[e.start];
  if (b !== 0 && b !== 0xff) throw new DerError('BOOLEAN other than 0x00 or 0xff is not DER');
  return b === 0xff;
}

/** One extension of a certificate: its OID, critical flag and the DER its OCTET STRING holds. */
export interface RawExtension {
  id: string;
  critical: boolean;
  value: Uint8Array;
}

/**
 * The extensions of a DER certificate (Certificate → TBSCertificate → [3] EXPLICIT Extensions), empty when it
 * has none. The certificate's other fields are skipped: node:crypto has parsed them.
 */
export function certificateExtensions(der: Uint8Array): RawExtension[] {
  const cert = single(der, SEQUENCE);
  const tbs = children(der, cert)[0];
  if (!tbs) throw new DerError('certificate without a TBSCertificate');
  expectTag(tbs, SEQUENCE);
  const wrapper = children(der, tbs).find((e) => e.tag === 0xa3);
  if (!wrapper) return [];
  const list = children(der, wrapper);
  if (list.length !== 1) throw new DerError('[3] must hold exactly one SEQUENCE of extensions');
  const seq = list[0] as Element;
  expectTag(seq, SEQUENCE);
  return children(der, seq).map((ext) => {
    expectTag(ext, SEQUENCE);
    const parts = children(der, ext);
    const [idPart, second, third] = parts;
    if (!idPart || !second || parts.length > 3) throw new DerError('extension of the wrong shape');
    const critical = third ? readBoolean(der, second) : false;
    const valuePart = third ?? second;
    expectTag(valuePart, OCTET_STRING);
    return { id: readOid(der, idPart), critical, value: der.subarray(valuePart.start, valuePart.end) };
  });
}

/** basicConstraints' cA (DEFAULT FALSE). */
export function readBasicConstraintsCa(der: Uint8Array): boolean {
  const parts = children(der, single(der, SEQUENCE));
  if (parts.length > 2) throw new DerError('basicConstraints of more than two fields');
  let ca = false;
  for (const [i, p] of parts.entries()) {
    if (p.tag === BOOLEAN && i === 0) ca = readBoolean(der, p);
    else if (p.tag === INTEGER && i === parts.length - 1) {
      if (p.end === p.start) throw new DerError('empty INTEGER');
    } else throw new DerError('basicConstraints holds something other than cA and pathLenConstraint');
  }
  return ca;
}

/** keyUsage's BIT STRING as a number: bit i (the i-th named bit, RFC 5280) is 2^i, as KeyUsageFlags. */
export function readKeyUsage(der: Uint8Array): number {
  const e = single(der, BIT_STRING);
  if (e.end === e.start) throw new DerError('BIT STRING without its unused-bits byte');
  const unused = der[e.start] as number;
  const bytes = e.end - e.start - 1;
  if (unused > 7 || (bytes === 0 && unused !== 0)) throw new DerError('BIT STRING unused-bits count invalid');
  if (bytes > 4) throw new DerError('keyUsage of more than 32 bits');
  let value = 0;
  for (let i = 0; i < bytes * 8 - unused; i++) {
    const byte = der[e.start + 1 + (i >> 3)] as number;
    if (byte & (0x80 >> (i & 7))) value += 2 ** i;
  }
  return value;
}

/** extKeyUsage's purposes, as dotted OIDs. */
export function readExtKeyUsage(der: Uint8Array): string[] {
  return children(der, single(der, SEQUENCE)).map((e) => readOid(der, e));
}

export interface SubjectAltNames {
  uris: string[];
  dnsNames: string[];
  /** Names of the other GeneralName kinds (otherName, rfc822Name, directoryName, iPAddress, ...). */
  other: number;
}

/** subjectAltName's GeneralNames: URIs and DNS names as text (IA5String, one character per byte). */
export function readSubjectAltNames(der: Uint8Array): SubjectAltNames {
  const out: SubjectAltNames = { uris: [], dnsNames: [], other: 0 };
  for (const e of children(der, single(der, SEQUENCE))) {
    const text = () => Buffer.from(der.subarray(e.start, e.end)).toString('latin1');
    if (e.tag === 0x86) out.uris.push(text());
    else if (e.tag === 0x82) out.dnsNames.push(text());
    else if (
      [0x81, 0x87, 0x88].includes(e.tag) ||
      [0xa0, 0xa3, 0xa4, 0xa5].includes(e.tag) // otherName, x400Address, directoryName, ediPartyName
    )
      out.other++;
    else throw new DerError(`tag 0x${e.tag.toString(16)} is not a GeneralName`);
  }
  return out;
}

/** subjectKeyIdentifier's OCTET STRING. */
export function readSubjectKeyIdentifier(der: Uint8Array): Buffer {
  const e = single(der, OCTET_STRING);
  return Buffer.from(der.subarray(e.start, e.end));
}

/** keyUsage bits (readKeyUsage's numbering, RFC 5280 §4.2.1.3 order): keyCertSign and cRLSign. */
export const KEY_CERT_SIGN = 1 << 5;
export const CRL_SIGN = 1 << 6;

/** The keyUsage bits of a DER certificate (see readKeyUsage); undefined when it has no keyUsage extension. */
export function keyUsageBits(der: Uint8Array): number | undefined {
  const ext = certificateExtensions(der).find((e) => e.id === '2.5.29.15');
  return ext ? readKeyUsage(ext.value) : undefined;
}
