import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { imageMallocEnv, MALLOC_TUNABLES } from '../../../bench/operator-env.ts';

const repo = new URL('../../../', import.meta.url);

describe("the operator's malloc settings (image, npm start, bench and profile launchers)", () => {
  it('are the same in the Dockerfile, in npm start and in the launchers', () => {
    const dockerfile = readFileSync(new URL('Dockerfile', repo), 'utf8');
    // The operator's stage is the last one: its ENV line is the one the image runs with.
    const operatorStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const env = /^ENV (.+)$/m.exec(operatorStage)?.[1] ?? '';
    const start = (
      JSON.parse(readFileSync(new URL('package.json', repo), 'utf8')) as { scripts: Record<string, string> }
    ).scripts.start;
    for (const [name, value] of Object.entries(imageMallocEnv({}))) {
      expect(env.split(' '), 'Dockerfile ENV').to.include(`${name}=${value}`);
      expect(start?.split(' '), 'npm start').to.include(`${name}=${value}`);
    }
    expect(imageMallocEnv({}).GLIBC_TUNABLES).to.equal(MALLOC_TUNABLES);
  });

  it("takes each setting from the launcher's environment when set, an empty value turning it off", () => {
    const cases: [NodeJS.ProcessEnv, Record<string, string>][] = [
      [{}, { MALLOC_ARENA_MAX: '2', GLIBC_TUNABLES: MALLOC_TUNABLES }],
      [{ GLIBC_TUNABLES: '' }, { MALLOC_ARENA_MAX: '2', GLIBC_TUNABLES: '' }],
      [{ MALLOC_ARENA_MAX: '1' }, { MALLOC_ARENA_MAX: '1', GLIBC_TUNABLES: MALLOC_TUNABLES }],
      [
        { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536', PATH: '/bin' },
        { MALLOC_ARENA_MAX: '2', GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' },
      ],
    ];
    for (const [env, expected] of cases) expect(imageMallocEnv(env)).to.deep.equal(expected);
  });
});
