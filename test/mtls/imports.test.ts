import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = fileURLToPath(new URL('../../packages/mtls/', import.meta.url));

describe('mTLS library: dependencies', () => {
  it('imports only node: builtins, undici and its own files (no Kubernetes client); grpc.ts also grpc-js', async () => {
    const files = (await readdir(path.join(pkg, 'src'), { recursive: true })).filter((f) =>
      f.endsWith('.ts'),
    );
    expect(files).to.include('index.ts');
    for (const file of files) {
      const text = await readFile(path.join(pkg, 'src', file), 'utf8');
      const specifiers = [
        ...text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'/g),
        ...text.matchAll(/import\('([^']+)'\)/g),
      ].map((m) => m[1] ?? '');
      for (const s of specifiers) {
        const inside = path.resolve(path.dirname(path.join(pkg, 'src', file)), s);
        const allowed =
          s.startsWith('node:') ||
          s === 'undici' ||
          // The optional peer dependency, only in the module users import for gRPC.
          (s === '@grpc/grpc-js' && file === 'grpc.ts') ||
          (s.startsWith('.') && inside.startsWith(path.join(pkg, 'src') + path.sep));
        expect(allowed, `${file} imports ${s}`).to.equal(true);
      }
    }
  });

  it('declares undici as its only runtime dependency, and grpc-js as an optional peer', async () => {
    const manifest = JSON.parse(await readFile(path.join(pkg, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    expect(Object.keys(manifest.dependencies ?? {})).to.deep.equal(['undici']);
    expect(manifest.peerDependencies ?? {}).to.deep.equal({ '@grpc/grpc-js': '>=1.12.0' });
    expect(manifest.peerDependenciesMeta).to.deep.equal({ '@grpc/grpc-js': { optional: true } });
  });
});
