import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../src/mtls/', import.meta.url));

describe('mTLS library: dependencies', () => {
  it('imports only node: builtins, undici and its own files (no Kubernetes client)', async () => {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ts'));
    expect(files).to.include('index.ts');
    for (const file of files) {
      const text = await readFile(path.join(dir, file), 'utf8');
      const specifiers = [
        ...text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'/g),
        ...text.matchAll(/import\('([^']+)'\)/g),
      ].map((m) => m[1] ?? '');
      for (const s of specifiers) {
        const allowed = s.startsWith('node:') || s === 'undici' || (s.startsWith('./') && !s.includes('..'));
        expect(allowed, `${file} imports ${s}`).to.equal(true);
      }
    }
  });
});
