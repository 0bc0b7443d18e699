// The Workload API decoders are parsers of what an agent sends: adversarial tables for the known ways to
// break each layer, and properties that hold for any input (only a WorkloadApiError is ever thrown, views
// stay inside the input, and encode/decode round-trip).
import { expect } from 'chai';
import fc from 'fast-check';
import { splitDer } from '../../../packages/mtls/src/workload-api/der.ts';
import { WorkloadApiError } from '../../../packages/mtls/src/workload-api/errors.ts';
import { encodeFrame, FrameDecoder } from '../../../packages/mtls/src/workload-api/grpc-frame.ts';
import {
  decodeX509SvidResponse,
  encodeX509SvidResponse,
  type X509SvidResponseMessage,
} from '../../../packages/mtls/src/workload-api/messages.ts';
import { readFields, readVarint, writeVarint } from '../../../packages/mtls/src/workload-api/protobuf.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);
const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s/g, ''), 'hex'));

function expectWlError(fn: () => unknown, reason: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a WorkloadApiError').to.be.instanceOf(WorkloadApiError);
  expect((caught as WorkloadApiError).reason).to.equal(reason);
  expect((caught as Error).message).to.match(message);
}

/** Only WorkloadApiError may escape a decoder; anything else is a bug. */
function decodesOrRefuses<T>(fn: () => T): T | WorkloadApiError {
  try {
    return fn();
  } catch (err) {
    if (err instanceof WorkloadApiError) return err;
    throw err;
  }
}

const message = (): fc.Arbitrary<X509SvidResponseMessage> =>
  fc.record({
    svids: fc.array(
      fc.record({
        spiffeId: fc.string({ maxLength: 40 }),
        x509Svid: fc.uint8Array({ maxLength: 64 }),
        x509SvidKey: fc.uint8Array({ maxLength: 64 }),
        bundle: fc.uint8Array({ maxLength: 64 }),
        hint: fc.string({ maxLength: 10 }),
      }),
      { maxLength: 4 },
    ),
    crl: fc.array(fc.uint8Array({ minLength: 1, maxLength: 16 }), { maxLength: 2 }),
    federatedBundles: fc
      .uniqueArray(fc.tuple(fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 32 })), {
        selector: ([k]) => k,
        maxLength: 3,
      })
      .map((entries) => new Map(entries)),
  });

describe('Workload API wire format', () => {
  describe('protobuf varints and fields', () => {
    it('reads the encodings of the protobuf docs', () => {
      expect(readVarint(bytes(0x01), 0)).to.deep.equal([1n, 1]);
      expect(readVarint(bytes(0x96, 0x01), 0)).to.deep.equal([150n, 2]);
      expect(readVarint(hex('ffffffffffffffffff01'), 0)).to.deep.equal([2n ** 64n - 1n, 10]);
      // "testing" as field 2 (the docs' example), then an unknown varint field 9 that is skipped.
      const fields = readFields(hex('120774657374696e67 4801'));
      expect(fields.map((f) => [f.number, f.wireType])).to.deep.equal([
        [2, 2],
        [9, 0],
      ]);
      expect(Buffer.from(fields[0]?.bytes ?? []).toString()).to.equal('testing');
    });

    const broken: [string, Uint8Array, RegExp][] = [
      ['varint cut off', bytes(0x08, 0x96), /varint runs past the end/],
      ['tag cut off', bytes(0x80), /varint runs past the end/],
      ['11-byte varint', hex('08ffffffffffffffffffff01'), /longer than (64 bits|10 bytes)/],
      ['varint over 64 bits', hex('08ffffffffffffffffff02'), /longer than 64 bits/],
      ['field number 0', bytes(0x02, 0x00), /field number 0/],
      ['length past the end', bytes(0x0a, 0x05, 0x41), /claims 5 bytes but 1 remain/],
      ['huge length', hex('0affffffff0f'), /claims 4294967295 bytes/],
      ['fixed64 cut off', bytes(0x09, 1, 2, 3), /fixed-size field runs past/],
      ['fixed32 cut off', bytes(0x0d, 1), /fixed-size field runs past/],
      ['start group', bytes(0x0b), /unsupported wire type 3/],
      ['end group', bytes(0x0c), /unsupported wire type 4/],
      ['wire type 6', bytes(0x0e), /unsupported wire type 6/],
      ['wire type 7', bytes(0x0f), /unsupported wire type 7/],
      ['tag over 32 bits', hex('80808080800100'), /tag is larger than 32 bits/],
    ];
    for (const [name, input, reason] of broken) {
      it(`refuses ${name}`, () => expectWlError(() => readFields(input), 'malformed', reason));
    }

    it('round-trips any varint', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
          expect(readVarint(writeVarint(v), 0)).to.deep.equal([v, writeVarint(v).length]);
        }),
      );
    });
  });

  describe('X509SVIDResponse', () => {
    it('round-trips any message through encode and decode', () => {
      fc.assert(
        fc.property(message(), (msg) => {
          const back = decodeX509SvidResponse(encodeX509SvidResponse(msg));
          expect(
            back.svids.map((s) => ({
              ...s,
              x509Svid: [...s.x509Svid],
              x509SvidKey: [...s.x509SvidKey],
              bundle: [...s.bundle],
            })),
          ).to.deep.equal(
            msg.svids.map((s) => ({
              ...s,
              x509Svid: [...s.x509Svid],
              x509SvidKey: [...s.x509SvidKey],
              bundle: [...s.bundle],
            })),
          );
          expect(back.crl.map((c) => [...c])).to.deep.equal(msg.crl.map((c) => [...c]));
          expect([...back.federatedBundles].map(([k, v]) => [k, [...v]])).to.deep.equal(
            [...msg.federatedBundles].map(([k, v]) => [k, [...v]]),
          );
        }),
      );
    });

    it('never throws anything but a WorkloadApiError and never returns bytes outside its input', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (input) => {
          const out = decodesOrRefuses(() => decodeX509SvidResponse(input));
          if (out instanceof WorkloadApiError) return;
          const views = [
            ...out.svids.flatMap((s) => [s.x509Svid, s.x509SvidKey, s.bundle]),
            ...out.crl,
            ...out.federatedBundles.values(),
          ];
          for (const v of views) {
            if (v.length === 0) continue;
            expect(v.buffer).to.equal(input.buffer);
            expect(v.byteOffset + v.byteLength).to.be.at.most(input.byteOffset + input.byteLength);
          }
        }),
        { numRuns: 2000 },
      );
    });

    it('survives any single-byte corruption or truncation of a valid message', () => {
      fc.assert(
        fc.property(message(), fc.nat(), fc.integer({ min: 0, max: 255 }), (msg, at, value) => {
          const enc = encodeX509SvidResponse(msg);
          if (enc.length === 0) return;
          const corrupt = enc.slice();
          corrupt[at % enc.length] = value;
          decodesOrRefuses(() => decodeX509SvidResponse(corrupt));
          decodesOrRefuses(() => decodeX509SvidResponse(enc.subarray(0, at % enc.length)));
        }),
      );
    });

    const broken: [string, Uint8Array, RegExp][] = [
      ['svids as a varint', bytes(0x08, 0x01), /X509SVIDResponse.svids \(field 1\) has wire type 0/],
      [
        'spiffe_id as a varint',
        bytes(0x0a, 0x02, 0x08, 0x01),
        /X509SVID.spiffe_id \(field 1\) has wire type 0/,
      ],
      ['spiffe_id not UTF-8', bytes(0x0a, 0x03, 0x0a, 0x01, 0xff), /X509SVID.spiffe_id is not valid UTF-8/],
      ['hint with a lone surrogate', hex('0a052a03eda080'), /X509SVID.hint is not valid UTF-8/],
      [
        'bundle map key not UTF-8',
        bytes(0x1a, 0x03, 0x0a, 0x01, 0xc0),
        /federated_bundles key is not valid UTF-8/,
      ],
      [
        'bundle map value as fixed32',
        bytes(0x1a, 0x05, 0x15, 1, 2, 3, 4),
        /federated_bundles value .* wire type 5/,
      ],
      ['nested length past the SVID', bytes(0x0a, 0x02, 0x12, 0x09), /claims 9 bytes but 0 remain/],
      ['crl as fixed64', hex('110102030405060708'), /X509SVIDResponse.crl \(field 2\) has wire type 1/],
    ];
    for (const [name, input, reason] of broken) {
      it(`refuses ${name}`, () => expectWlError(() => decodeX509SvidResponse(input), 'malformed', reason));
    }

    it('keeps the last value of a repeated scalar and of a repeated map key, and skips unknown fields', () => {
      const enc = hex('0a0b 0a0161 0a0162 3001 3a0178 1a09 0a016b 120101 120102 1a05 0a016b 1200');
      const out = decodeX509SvidResponse(enc);
      expect(out.svids).to.have.length(1);
      expect(out.svids[0]?.spiffeId).to.equal('b');
      expect([...out.federatedBundles].map(([k, v]) => [k, [...v]])).to.deep.equal([['k', []]]);
    });
  });

  describe('gRPC frames', () => {
    it('reassembles messages split across and packed into chunks, byte by byte too', () => {
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 5 }),
          fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 10 }),
          (messages, cuts) => {
            const wire = Buffer.concat(messages.map(encodeFrame));
            const decoder = new FrameDecoder(1000);
            const got: number[][] = [];
            let pos = 0;
            for (let i = 0; pos < wire.length; i++) {
              const n = cuts[i % cuts.length] as number;
              for (const m of decoder.push(wire.subarray(pos, pos + n))) got.push([...m]);
              pos += n;
            }
            expect(got).to.deep.equal(messages.map((m) => [...m]));
            expect(decoder.pending).to.equal(false);
          },
        ),
      );
    });

    it('refuses a frame over the limit from its header, before buffering it', () => {
      const decoder = new FrameDecoder(1024);
      expectWlError(
        () => decoder.push(bytes(0, 0, 0, 4, 1)),
        'too-large',
        /1025-byte message; the limit is 1024 bytes/,
      );
      expectWlError(
        () => new FrameDecoder().push(bytes(0, 0xff, 0xff, 0xff, 0xff)),
        'too-large',
        /4294967295-byte message; the limit is 4194304/,
      );
    });

    it('refuses compressed and unknown flags', () => {
      expectWlError(
        () => new FrameDecoder().push(bytes(1, 0, 0, 0, 0)),
        'malformed',
        /compressed gRPC message/,
      );
      expectWlError(
        () => new FrameDecoder().push(bytes(0x80, 0, 0, 0, 0)),
        'malformed',
        /invalid gRPC frame flag 128/,
      );
    });

    it('reports a message cut short as pending', () => {
      const decoder = new FrameDecoder();
      expect(decoder.push(bytes(0, 0, 0, 0, 3, 1))).to.deep.equal([]);
      expect(decoder.pending).to.equal(true);
    });

    it('never throws anything but a WorkloadApiError on any byte stream', () => {
      fc.assert(
        fc.property(fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 8 }), (chunks) => {
          const decoder = new FrameDecoder(64);
          decodesOrRefuses(() => chunks.flatMap((c) => decoder.push(c)));
        }),
      );
    });
  });

  describe('concatenated DER', () => {
    it('splits short- and long-form lengths', () => {
      const long = new Uint8Array(4 + 200);
      long.set([0x30, 0x81, 200 + 1 - 1], 0);
      const a = hex('3003020101');
      const b = new Uint8Array([0x30, 0x81, 0xc8, ...new Uint8Array(200)]);
      const parts = splitDer(Buffer.concat([a, b]), 'bundle');
      expect(parts.map((p) => p.length)).to.deep.equal([5, 203]);
    });

    const broken: [string, Uint8Array, RegExp][] = [
      ['not a SEQUENCE', hex('0403010203'), /certificate 1 is broken: tag 0x4 where a SEQUENCE belongs/],
      ['length past the end', hex('3005020101'), /certificate 1 is broken: contents run past the end/],
      ['indefinite length', hex('308002010100 00'), /certificate 1 is broken: indefinite length is not DER/],
      ['5 length bytes', hex('30850000000001 00'), /certificate 1 is broken: length of more than 4 bytes/],
      [
        'a lone tag byte after a good one',
        hex('3003020101 30'),
        /certificate 2 is broken: element header runs past/,
      ],
      ['a long-form length cut off', hex('3082 01'), /certificate 1 is broken: length runs past its end/],
      [
        'a long-form length that fits the short form',
        hex('308103020101'),
        /certificate 1 is broken: length is not minimally encoded/,
      ],
      [
        'a long-form length with a leading zero',
        hex('308200c8'),
        /certificate 1 is broken: length is not minimally encoded/,
      ],
      ['a high tag number', hex('1f2a00'), /certificate 1 is broken: high tag numbers/],
    ];
    for (const [name, input, reason] of broken) {
      it(`refuses ${name}`, () => expectWlError(() => splitDer(input, 'bundle'), 'malformed', reason));
    }

    it('refuses more items than the limit', () => {
      expectWlError(
        () => splitDer(hex('3000'.repeat(11)), 'bundle', 10),
        'too-large',
        /more than 10 certificates/,
      );
    });

    it('returns views that tile the input exactly, or refuses', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
          const out = decodesOrRefuses(() => splitDer(input, 'x'));
          if (out instanceof WorkloadApiError) return;
          expect(out.reduce((n, p) => n + p.length, 0)).to.equal(input.length);
        }),
        { numRuns: 2000 },
      );
    });
  });
});
