import { expect } from 'chai';
import fc from 'fast-check';
import { MAX_HELD, WriteMemory } from '../../../src/controller-runtime/write-memory.ts';

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
      expect(memory.seen('app/s', obj(delivered))).to.equal(echo ? 'echo' : 'change');
    });
  }

  it('a second delivery of the same version is not an echo again (e.g. a re-list)', () => {
    const cache = new Map<string, ReturnType<typeof obj>>([['app/s', obj('10')]]);
    const memory = new WriteMemory(cache);
    memory.wrote('app/s', obj('11'));
    cache.set('app/s', obj('11'));
    expect(memory.seen('app/s', obj('11'))).to.equal('echo');
    expect(memory.seen('app/s', obj('11'))).to.equal('change');
  });
});

describe('write memory: an echo that arrives before the write answers', () => {
  type Obj = ReturnType<typeof obj>;
  const setup = () => {
    const cache = new Map<string, Obj>([['app/s', obj('10')]]);
    const changes: string[] = [];
    const memory = new WriteMemory<Obj>(
      cache,
      () => 0,
      (key, o) => changes.push(`${key}@${o.metadata.resourceVersion}`),
    );
    // What the informer does: the cache first, then the handler.
    const deliver = (rv: string) => {
      cache.set('app/s', obj(rv));
      return memory.seen('app/s', obj(rv));
    };
    return { cache, changes, memory, deliver };
  };

  // [case, events delivered while the write is in flight, the write's answer (undefined: it failed),
  //  the events handed back as changes when it answers]
  const cases: [string, string[], string | undefined, string[]][] = [
    ['the echo alone: dropped', ['11'], '11', []],
    ["someone else's change after ours: a change", ['12'], '11', ['app/s@12']],
    ["someone else's change before ours (its event was on the way): a change", ['10'], '11', ['app/s@10']],
    ['the echo and a later foreign change: only the foreign one', ['11', '12'], '11', ['app/s@12']],
    ['a foreign change, then the echo: only the foreign one', ['12', '13'], '13', ['app/s@12']],
    ['the write failed: everything held is a change', ['11'], undefined, ['app/s@11']],
    ['non-numeric resourceVersion: never an echo', ['abc'], '11', ['app/s@abc']],
    ['nothing arrived meanwhile: nothing handed back', [], '11', []],
  ];
  for (const [name, events, answer, changed] of cases) {
    it(name, () => {
      const { changes, memory, deliver } = setup();
      memory.sending('app/s');
      for (const rv of events) expect(deliver(rv)).to.equal('held');
      expect(changes).to.deep.equal([]);
      if (answer === undefined) memory.failed('app/s');
      else memory.wrote('app/s', obj(answer));
      expect(changes).to.deep.equal(changed);
      expect(memory.inFlight).to.equal(0);
    });
  }

  it('without a write in flight nothing is held: a change, or the echo of a remembered write', () => {
    const { changes, memory, deliver } = setup();
    expect(deliver('11')).to.equal('change');
    memory.sending('app/s');
    memory.wrote('app/s', obj('12'));
    expect(deliver('12')).to.equal('echo');
    expect(deliver('13')).to.equal('change');
    expect(changes).to.deep.equal([]);
  });

  it('the late echo of an earlier write, arriving during the next write, is still its echo', () => {
    const { changes, memory, deliver } = setup();
    memory.sending('app/s');
    memory.wrote('app/s', obj('11'));
    memory.sending('app/s');
    expect(deliver('11')).to.equal('echo');
    expect(deliver('12')).to.equal('held');
    memory.wrote('app/s', obj('12'));
    expect(changes).to.deep.equal([]);
  });

  it(`holds at most ${MAX_HELD} events per key; later ones are changes at once`, () => {
    const { changes, memory, deliver } = setup();
    memory.sending('app/s');
    const seen = Array.from({ length: MAX_HELD + 3 }, (_, i) => deliver(String(20 + i)));
    expect(seen.filter((s) => s === 'held')).to.have.length(MAX_HELD);
    expect(seen.slice(MAX_HELD)).to.deep.equal(['change', 'change', 'change']);
    memory.wrote('app/s', obj('20'));
    // The first held one was the echo; the other held ones are handed back, in order.
    expect(changes).to.deep.equal(Array.from({ length: MAX_HELD - 1 }, (_, i) => `app/s@${21 + i}`));
  });

  it('two writes of a key in flight: held events are judged against both answers, after the last', () => {
    const { changes, memory, deliver } = setup();
    memory.sending('app/s');
    memory.sending('app/s');
    expect(deliver('11')).to.equal('held');
    memory.wrote('app/s', obj('11'));
    expect(memory.inFlight).to.equal(1);
    expect(deliver('12')).to.equal('held');
    expect(deliver('13')).to.equal('held');
    memory.wrote('app/s', obj('12'));
    expect(changes).to.deep.equal(['app/s@13']);
  });

  it('other keys are not held by a write in flight', () => {
    const { memory } = setup();
    memory.sending('app/s');
    expect(memory.seen('app/other', obj('11'))).to.equal('change');
  });

  it('a deletion during the write: the held echo is dropped and the write is not remembered', () => {
    const { cache, changes, memory, deliver } = setup();
    memory.sending('app/s');
    expect(deliver('11')).to.equal('held');
    cache.delete('app/s');
    memory.deleted('app/s', obj('12'));
    memory.wrote('app/s', obj('11'));
    expect(changes).to.deep.equal([]);
    expect(memory.get('app/s')).to.equal(undefined);
  });

  it('property: every foreign change is handed on exactly once; the echo only when the write failed', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 1000 }), { maxLength: 12 }),
        fc.integer({ min: 1001, max: 2000 }),
        fc.nat(),
        fc.boolean(),
        fc.boolean(),
        (foreign, written, at, echoArrives, fails) => {
          const { changes, memory, deliver } = setup();
          const events = foreign.map(String);
          if (echoArrives) events.splice(at % (events.length + 1), 0, String(written));
          memory.sending('app/s');
          const passed = events.filter((rv) => deliver(rv) === 'change').map((rv) => `app/s@${rv}`);
          if (fails) memory.failed('app/s');
          else memory.wrote('app/s', obj(String(written)));
          const reported = [...passed, ...changes].sort();
          const expected = events
            .filter((rv) => fails || rv !== String(written))
            .map((rv) => `app/s@${rv}`)
            .sort();
          // Past MAX_HELD the echo itself may pass through as a change (one spare reconcile, never a loss).
          const extraEcho = `app/s@${written}`;
          const extras = reported.filter((r) => !expected.includes(r));
          expect(expected.every((e) => reported.filter((r) => r === e).length === 1)).to.equal(true);
          expect(extras.every((r) => r === extraEcho)).to.equal(true);
          if (events.length <= MAX_HELD) expect(extras).to.deep.equal([]);
          expect(memory.inFlight).to.equal(0);
        },
      ),
    );
  });
});
