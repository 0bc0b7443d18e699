// gRPC's length-prefixed message framing over HTTP/2 DATA frames: a 1-byte compressed flag, a 4-byte
// big-endian length, then the message (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
// Messages may span DATA frames and a DATA frame may hold several messages, so the decoder buffers; it
// refuses a length above its limit before buffering any of it, so a peer cannot make it hold more.
import { WorkloadApiError } from './errors.ts';

/** grpc-go's and grpc-js's default limit for a received message. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export function encodeFrame(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

export class FrameDecoder {
  private readonly maxMessageBytes: number;
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Adds received bytes; returns the messages they complete. Throws WorkloadApiError on a bad header. */
  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.buffered < 5) return out;
      const head = this.peek(5);
      const flag = head[0] as number;
      if (flag === 1)
        throw new WorkloadApiError(
          'malformed',
          'the agent sent a compressed gRPC message though none was negotiated',
        );
      if (flag !== 0) throw new WorkloadApiError('malformed', `invalid gRPC frame flag ${flag}`);
      const length = new DataView(head.buffer, head.byteOffset, 5).getUint32(1);
      if (length > this.maxMessageBytes)
        throw new WorkloadApiError(
          'too-large',
          `the agent sent a ${length}-byte message; the limit is ${this.maxMessageBytes} bytes (option maxMessageBytes)`,
        );
      if (this.buffered < 5 + length) return out;
      out.push(this.take(5 + length).subarray(5));
    }
  }

  /** True when a message has started but not finished (a stream ending now was cut short). */
  get pending(): boolean {
    return this.buffered > 0;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (first.length >= n) return first.subarray(0, n);
    this.chunks = [concatAll(this.chunks, this.buffered)];
    return (this.chunks[0] as Uint8Array).subarray(0, n);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0] as Uint8Array;
    if (first.length < n) this.chunks = [concatAll(this.chunks, this.buffered)];
    const all = this.chunks[0] as Uint8Array;
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest, ...this.chunks.slice(1)] : this.chunks.slice(1);
    this.buffered -= n;
    return out;
  }
}

function concatAll(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}
