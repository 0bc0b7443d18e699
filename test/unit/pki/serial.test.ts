import { expect } from 'chai';
import { randomSerial } from '../../../src/pki/signer.ts';

describe('randomSerial', () => {
  // 4 KiB of pool is 256 serials: 1,000 cross the refill three times.
  const serials = Array.from({ length: 1000 }, () => randomSerial());

  it('is 16 bytes, positive, with the second bit set so the DER INTEGER is always 16 bytes', () => {
    for (const s of serials) {
      expect(s.length).to.equal(16);
      expect((s[0] ?? 0) & 0x80, 'top bit').to.equal(0);
      expect((s[0] ?? 0) & 0x40, 'second bit').to.equal(0x40);
    }
  });

  it('never repeats, across pool refills', () => {
    expect(new Set(serials.map((s) => s.toString('hex'))).size).to.equal(serials.length);
  });

  it('hands out copies: changing one serial changes no other', () => {
    const a = randomSerial();
    const b = randomSerial();
    const before = b.toString('hex');
    a.fill(0);
    expect(b.toString('hex')).to.equal(before);
    expect(a.equals(Buffer.alloc(16))).to.equal(true);
  });
});
