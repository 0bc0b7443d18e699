// Splitting concatenated DER certificates (the Workload API's x509_svid and bundle fields) by the outer
// SEQUENCE's length, with the library's strict DER reader. Bounded: a claimed length beyond the input is
// refused, not read.
import { DerError, readElement, type Element } from '../der.ts';
import { WorkloadApiError } from './errors.ts';

const malformed = (what: string, i: number, why: string) =>
  new WorkloadApiError(
    'malformed',
    `${what} is not a list of DER certificates (certificate ${i + 1} is broken: ${why})`,
  );

/** Splits `buf` into the DER encodings it concatenates; each must be a definite-length SEQUENCE. */
export function splitDer(buf: Uint8Array, what: string, maxItems = 1000): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (out.length >= maxItems)
      throw new WorkloadApiError('too-large', `${what} holds more than ${maxItems} certificates`);
    let e: Element;
    try {
      e = readElement(buf, pos, buf.length);
    } catch (err) {
      if (err instanceof DerError) throw malformed(what, out.length, err.message);
      throw err;
    }
    if (e.tag !== 0x30)
      throw malformed(what, out.length, `tag 0x${e.tag.toString(16)} where a SEQUENCE belongs`);
    out.push(buf.subarray(pos, e.end));
    pos = e.end;
  }
  return out;
}
