import { expect } from 'chai';
import { WriteMemory } from '../../../src/controller-runtime/write-memory.ts';

const obj = (resourceVersion: string) => ({ metadata: { name: 's', namespace: 'app', resourceVersion } });

describe('write memory: recognising the echo of an own write', () => {
  const cases: [string, string | undefined, string, boolean][] = [
    ['the watch delivers exactly the write', '11', '11', true],
    ['the watch delivers a newer change by someone else', '11', '12', false],
    ['the watch delivers an older version (its event was on the way)', '11', '10', false],
    ['nothing was written', undefined, '11', false],
    ['non-numeric resourceVersions: never taken for an echo', 'abc', 'abc', false],
  ];
  for (const [name, written, delivered, echo] of cases) {
    it(`${name}: ${echo ? 'an echo' : 'not an echo'}`, () => {
      const cache = new Map<string, ReturnType<typeof obj>>([['app/s', obj('10')]]);
      const memory = new WriteMemory(cache);
      if (written) memory.wrote('app/s', obj(written));
      cache.set('app/s', obj(delivered));
      expect(memory.seen('app/s', obj(delivered))).to.equal(echo);
    });
  }

  it('a second delivery of the same version is not an echo again (e.g. a re-list)', () => {
    const cache = new Map<string, ReturnType<typeof obj>>([['app/s', obj('10')]]);
    const memory = new WriteMemory(cache);
    memory.wrote('app/s', obj('11'));
    cache.set('app/s', obj('11'));
    expect(memory.seen('app/s', obj('11'))).to.equal(true);
    expect(memory.seen('app/s', obj('11'))).to.equal(false);
  });
});
