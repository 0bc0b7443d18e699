import { expect } from 'chai';
import { TokenFile } from '../../../src/kube/token-file.ts';

/** A token file held in memory, and a clock that only moves when told. */
function fixture(initial: string | Error) {
  let content: string | Error = initial;
  let now = 0;
  const reads: number[] = [];
  const tf = new TokenFile('/var/run/secrets/kubernetes.io/serviceaccount/token', {
    clock: () => now,
    readFile: async () => {
      reads.push(now);
      if (content instanceof Error) throw content;
      return content;
    },
    maxAgeMs: 60_000,
  });
  return {
    tf,
    reads,
    set: (c: string | Error) => (content = c),
    advance: (ms: number) => (now += ms),
  };
}

describe('TokenFile (a bearer token rotated in place)', () => {
  it('reads once, serves the copy while it is fresh, and picks up a rotated token after maxAge', async () => {
    const f = fixture('one\n');
    expect(await f.tf.token()).to.equal('one');
    f.set('two');
    f.advance(59_999);
    expect(await f.tf.token()).to.equal('one');
    f.advance(1);
    expect(await f.tf.token()).to.equal('two');
    expect(f.reads).to.deep.equal([0, 60_000]);
  });

  it('reads once for concurrent callers', async () => {
    const f = fixture('one');
    expect(await Promise.all([f.tf.token(), f.tf.token(), f.tf.token()])).to.deep.equal([
      'one',
      'one',
      'one',
    ]);
    expect(f.reads).to.have.length(1);
  });

  it('keeps the last token when a re-read fails or finds the file empty', async () => {
    const f = fixture('one');
    await f.tf.token();
    f.set(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' }));
    f.advance(60_000);
    expect(await f.tf.token()).to.equal('one');
    f.set('  \n');
    f.advance(60_000);
    expect(await f.tf.token()).to.equal('one');
    f.set('three');
    f.advance(60_000);
    expect(await f.tf.token()).to.equal('three');
  });

  const unreadable: [string, string | Error, RegExp][] = [
    [
      'a missing file',
      new Error('ENOENT: no such file'),
      /cannot read the bearer token file \/var\/run\/.*token \(ENOENT: no such file\): check the path/,
    ],
    [
      'an empty file',
      '',
      /cannot read the bearer token file .* \(it is empty\): check the path and that the service account token is mounted/,
    ],
  ];
  for (const [name, content, reason] of unreadable) {
    it(`fails with the reason for ${name} on the first read, and reads again on the next call`, async () => {
      const f = fixture(content);
      const err = await f.tf.token().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as Error).message).to.match(reason);
      f.set('ok');
      expect(await f.tf.token()).to.equal('ok');
    });
  }
});
