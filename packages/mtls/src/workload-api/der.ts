// Splitting concatenated DER certificates (the Workload API's x509_svid and bundle fields) by the outer
// SEQUENCE's length. Bounded: a claimed length beyond the input is refused, not read.
import { WorkloadApiError } from './errors.ts';

const malformed = (what: string, i: number) =>
  new WorkloadApiError(
    'malformed',
    `${what} is not a list of DER certificates (certificate ${i + 1} is broken)`,
  );

/** Splits `buf` into the DER encodings it concatenates; each must be a definite-length SEQUENCE. */
export function splitDer(buf: Uint8Array, what: string, maxItems = 1000): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (out.length >= maxItems)
      throw new WorkloadApiError('too-large', `${what} holds more than ${maxItems} certificates`);
    if (buf[pos] !== 0x30 || pos + 2 > buf.length) throw malformed(what, out.length);
    const first = buf[pos + 1] as number;
    let len: number;
    let header: number;
    if (first < 0x80) {
      len = first;
      header = 2;
    } else {
      const n = first & 0x7f;
      // 0x80 is BER's indefinite length (not DER); more than 4 length bytes cannot fit any input here.
      if (n === 0 || n > 4 || pos + 2 + n > buf.length) throw malformed(what, out.length);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + 2 + i] as number);
      header = 2 + n;
    }
    const end = pos + header + len;
    if (end > buf.length) throw malformed(what, out.length);
    out.push(buf.subarray(pos, end));
    pos = end;
  }
  return out;
}
