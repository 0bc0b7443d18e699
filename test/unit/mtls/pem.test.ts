import { expect } from 'chai';
import fc from 'fast-check';
import { pemBlocks, toPem } from '../../../packages/mtls/src/pem.ts';

/** The encoding toPem had before its lines were cut with slices: the reference the new one must equal. */
const regexPem = (label: string, der: Buffer): string => {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
};

describe('toPem', () => {
  const cases: [string, number, string[]][] = [
    ['one byte', 1, ['AQ==']],
    ['47 bytes: one short line', 47, ['A'.repeat(63) + '=']],
    ['48 bytes: exactly one full line', 48, ['A'.repeat(64)]],
    ['49 bytes: a full line and a short one', 49, ['A'.repeat(64), 'AQ==']],
    ['96 bytes: exactly two full lines', 96, ['A'.repeat(64), 'A'.repeat(64)]],
  ];
  for (const [name, size, lines] of cases) {
    it(`writes ${name} in lines of at most 64 characters`, () => {
      const der = Buffer.alloc(size);
      if (size === 1 || size === 49) der[size - 1] = 1;
      expect(toPem('CERTIFICATE', der)).to.equal(
        `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`,
      );
    });
  }

  it('writes an empty body as one empty line, as before', () => {
    expect(toPem('X', Buffer.alloc(0))).to.equal('-----BEGIN X-----\n\n-----END X-----\n');
  });

  it('property: equals the regex encoding and reads back to the same bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.constantFrom('CERTIFICATE', 'PRIVATE KEY'),
        (bytes, label) => {
          const der = Buffer.from(bytes);
          const pem = toPem(label, der);
          expect(pem).to.equal(regexPem(label, der));
          if (der.length > 0) expect(pemBlocks(pem)).to.deep.equal([{ label, der }]);
          for (const line of pem.split('\n')) expect(line.length).to.be.at.most(64);
        },
      ),
    );
  });
});
