// The protobuf wire format, as far as the Workload API messages need it: varints, length-delimited fields,
// and skipping of the other wire types (unknown fields are ignored, as proto3 requires). Every read is
// bounds-checked and every failure is a WorkloadApiError('malformed'); nothing else is thrown.
// Reference: https://protobuf.dev/programming-guides/encoding/
import { WorkloadApiError } from './errors.ts';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

export interface Field {
  number: number;
  wireType: number;
  /** For WIRE_LEN: the field's bytes (a view into the input, not a copy). */
  bytes?: Uint8Array;
  /** For WIRE_VARINT: the value (bigint, as a varint may hold 64 bits). */
  varint?: bigint;
}

const malformed = (what: string) => new WorkloadApiError('malformed', `invalid protobuf: ${what}`);

/** Reads a base-128 varint at `pos`; at most 10 bytes and 64 bits, as the format allows. */
export function readVarint(buf: Uint8Array, pos: number): [value: bigint, next: number] {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw malformed('a varint runs past the end of the message');
    const b = buf[pos + i] as number;
    if (i === 9 && b > 1) throw malformed('a varint is longer than 64 bits');
    value |= BigInt(b & 0x7f) << BigInt(7 * i);
    if ((b & 0x80) === 0) return [value, pos + i + 1];
  }
  throw malformed('a varint is longer than 10 bytes');
}

/** Splits a message into its fields, in wire order. */
export function readFields(buf: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, afterTag] = readVarint(buf, pos);
    if (tag > 0xffffffffn) throw malformed('a field tag is larger than 32 bits');
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) throw malformed('field number 0');
    pos = afterTag;
    switch (wireType) {
      case WIRE_VARINT: {
        const [varint, next] = readVarint(buf, pos);
        fields.push({ number, wireType, varint });
        pos = next;
        break;
      }
      case WIRE_I64:
      case WIRE_I32: {
        const size = wireType === WIRE_I64 ? 8 : 4;
        if (pos + size > buf.length) throw malformed('a fixed-size field runs past the end of the message');
        fields.push({ number, wireType });
        pos += size;
        break;
      }
      case WIRE_LEN: {
        const [len, start] = readVarint(buf, pos);
        if (len > BigInt(buf.length - start))
          throw malformed(`field ${number} claims ${len} bytes but ${buf.length - start} remain`);
        const end = start + Number(len);
        fields.push({ number, wireType, bytes: buf.subarray(start, end) });
        pos = end;
        break;
      }
      default:
        // 3 and 4 are the deprecated groups (never used by these messages), 6 and 7 do not exist.
        throw malformed(`field ${number} has unsupported wire type ${wireType}`);
    }
  }
  return fields;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A proto3 string field: must be valid UTF-8. */
export function readString(field: Field, name: string): string {
  const bytes = expectBytes(field, name);
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed(`${name} is not valid UTF-8`);
  }
}

/** A bytes, string or embedded-message field: must be length-delimited. */
export function expectBytes(field: Field, name: string): Uint8Array {
  if (field.wireType !== WIRE_LEN || !field.bytes)
    throw malformed(
      `${name} (field ${field.number}) has wire type ${field.wireType}, expected length-delimited`,
    );
  return field.bytes;
}

// Writing, for the request message and for tests that play the agent's side.

export function writeVarint(value: number | bigint): Uint8Array {
  let v = BigInt(value);
  if (v < 0n) throw new RangeError('varints here are unsigned');
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return Uint8Array.from(out);
}

/** A length-delimited field (bytes, string, embedded message). */
export function writeLenField(number: number, bytes: Uint8Array | string): Uint8Array {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  return concat([writeVarint((number << 3) | WIRE_LEN), writeVarint(data.length), data]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
