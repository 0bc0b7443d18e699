import { createHash } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { ContentMemo, contentDigest } from '../../../src/controller-runtime/content-memo.ts';

describe('content memo', () => {
  it('answers only for the digest a value was remembered with', () => {
    const memo = new ContentMemo<string>(10);
    memo.set('ns/a', 'd1', 'v1');
    expect(memo.get('ns/a', 'd1')).to.equal('v1');
    expect(memo.get('ns/a', 'd2')).to.equal(undefined);
    expect(memo.get('ns/b', 'd1')).to.equal(undefined);
    expect(memo).to.include({ hits: 1, misses: 2 });
  });

  it('keeps one entry per key: a new digest replaces the old one', () => {
    const memo = new ContentMemo<string>(10);
    memo.set('k', 'd1', 'v1');
    memo.set('k', 'd2', 'v2');
    expect(memo.size).to.equal(1);
    expect(memo.get('k', 'd1')).to.equal(undefined);
    expect(memo.get('k', 'd2')).to.equal('v2');
  });

  it('computes on a miss only', () => {
    const memo = new ContentMemo<number>(10);
    let computed = 0;
    const compute = () => ++computed;
    expect(memo.getOrCompute('k', 'd1', compute)).to.equal(1);
    expect(memo.getOrCompute('k', 'd1', compute)).to.equal(1);
    expect(memo.getOrCompute('k', 'd2', compute)).to.equal(2);
    expect(computed).to.equal(2);
  });

  it('stays bounded, dropping the least recently used key first', () => {
    const memo = new ContentMemo<number>(3);
    for (let i = 0; i < 3; i++) memo.set(`k${i}`, 'd', i);
    expect(memo.get('k0', 'd')).to.equal(0); // k0 is now the most recently used
    memo.set('k3', 'd', 3);
    expect(memo.size).to.equal(3);
    expect(memo.get('k1', 'd')).to.equal(undefined);
    expect(memo.get('k0', 'd')).to.equal(0);
    expect(memo.get('k3', 'd')).to.equal(3);
    for (let i = 0; i < 1000; i++) memo.set(`x${i}`, 'd', i);
    expect(memo.size).to.equal(3);
    expect([memo.get('x997', 'd'), memo.get('x998', 'd'), memo.get('x999', 'd')]).to.deep.equal([
      997, 998, 999,
    ]);
  });

  it('forgets a deleted key', () => {
    const memo = new ContentMemo<number>(3);
    memo.set('k', 'd', 1);
    memo.delete('k');
    expect(memo.get('k', 'd')).to.equal(undefined);
    expect(memo.size).to.equal(0);
  });

  it('refuses a bound that is not a positive integer', () => {
    for (const max of [0, -1, 1.5, Number.NaN]) {
      expect(() => new ContentMemo(max)).to.throw(`max must be a positive integer, not ${max}`);
    }
  });

  describe('content digests', () => {
    it('differ when the parts differ, however they are split', () => {
      expect(contentDigest(['ab', 'c'])).to.not.equal(contentDigest(['a', 'bc']));
      expect(contentDigest(['', 'x'])).to.not.equal(contentDigest([undefined, 'x']));
      expect(contentDigest(['x'])).to.not.equal(contentDigest(['x', '']));
      expect(contentDigest(['1:a'])).to.not.equal(contentDigest(['a']));
    });

    it('are the 32 bytes of the SHA-256 as one Latin-1 character each', () => {
      const d = contentDigest(['a']);
      expect(d).to.have.length(32);
      const expected = createHash('sha256').update('1:').update('a').digest();
      expect(Buffer.from(d, 'latin1').equals(expected)).to.equal(true);
    });

    it('equal exactly when the part lists are equal (property)', () => {
      const parts = fc.array(fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), { maxLength: 4 });
      fc.assert(
        fc.property(parts, parts, (a, b) => {
          const same = a.length === b.length && a.every((x, i) => x === b[i]);
          expect(contentDigest(a) === contentDigest(b)).to.equal(same);
        }),
      );
    });
  });
});
