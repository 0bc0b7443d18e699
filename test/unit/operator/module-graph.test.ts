// The operator's memory baseline depends on what it loads: @kubernetes/client-node alone costs ~85 MB
// (it imports every generated API and model), the mTLS library's root (servers, clients, undici) ~45 MB. The operator's module graph must not reach it; only a
// kubeconfig that needs a feature we leave to client-node (exec plugins, auth providers, ...) loads it.
// A child node records every module URL resolved (module.registerHooks) while importing.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const url = (rel: string) => pathToFileURL(path.join(root, rel)).href;

/** Imports `entry` in a fresh node (and loads a client for `kubeconfig` when given): the URLs resolved. */
async function resolvedUrls(entry: string, kubeconfig?: string, request?: string): Promise<string[]> {
  const script = `
    import { registerHooks } from 'node:module';
    const urls = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); urls.push(r.url); return r; } });
    await import(${JSON.stringify(url(entry))});
    if (process.env.TEST_KUBECONFIG) {
      const { loadKubeClient } = await import(${JSON.stringify(url('src/kube/load.ts'))});
      const client = await loadKubeClient({ KUBECONFIG: process.env.TEST_KUBECONFIG });
      if (process.env.TEST_REQUEST) urls.push('answer:' + JSON.stringify(await client.get(process.env.TEST_REQUEST)));
      await client.close();
    }
    for (const m of process.moduleLoadList) urls.push('loaded:' + m);
    process.stdout.write(JSON.stringify(urls));
  `;
  const { stdout } = await run(
    process.execPath,
    ['--conditions=svid-operator-source', '--input-type=module', '-e', script],
    {
      cwd: root,
      env: { ...process.env, TEST_KUBECONFIG: kubeconfig ?? '', TEST_REQUEST: request ?? '' },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return JSON.parse(stdout) as string[];
}

const clientNode = (urls: string[]) => urls.filter((u) => u.includes('/@kubernetes/client-node/'));

describe('the operator module graph', function () {
  this.timeout(120_000);
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'module-graph-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const kubeconfig = async (name: string, user: Record<string, unknown>, server = 'https://127.0.0.1:1') => {
    const file = path.join(dir, name);
    await writeFile(
      file,
      stringify({
        clusters: [{ name: 'k', cluster: { server } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    return file;
  };

  it('src/operator/main.ts never loads @kubernetes/client-node', async () => {
    const urls = await resolvedUrls('src/operator/main.ts');
    // The hook saw the operator's graph (so an empty finding means something).
    expect(urls).to.include(url('src/kube/client.ts'));
    expect(urls).to.include(url('src/reconcilers/workload-identity/controller.ts'));
    expect(urls).to.include(url('src/leader/lease-election.ts'));
    expect(clientNode(urls)).to.deep.equal([]);
  });

  it('loads neither the whole mTLS library (its servers, clients, gRPC) nor the whole of undici', async () => {
    const urls = await resolvedUrls('src/operator/main.ts');
    expect(urls).to.include(url('packages/mtls/src/pem.ts'));
    expect(urls).not.to.include(url('packages/mtls/src/index.ts'));
    expect(urls).not.to.include(url('packages/mtls/src/server.ts'));
    expect(urls).not.to.include(url('node_modules/undici/index.js'));
  });

  it("loads no @peculiar ASN.1 package: profile() reads extensions with the library's DER reader alone", async () => {
    const urls = await resolvedUrls('src/operator/main.ts');
    expect(urls).to.include(url('packages/mtls/src/der.ts'));
    expect(urls.filter((u) => u.includes('/@peculiar/'))).to.deep.equal([]);
  });

  it("never loads Node's bundled undici (fetch, WebSocket), which an ESM import of node:http does", async () => {
    const urls = await resolvedUrls('src/operator/main.ts', await kubeconfig('token-2', { token: 't' }));
    // The list is Node's own record of what it loaded (so an absent entry means something).
    expect(urls).to.include('loaded:NativeModule http');
    expect(urls).to.include('loaded:NativeModule tls');
    expect(urls.filter((u) => u.startsWith('loaded:') && u.includes('deps/undici'))).to.deep.equal([]);
  });

  it('nor does loading a kubeconfig with a token', async () => {
    const urls = await resolvedUrls('src/operator/main.ts', await kubeconfig('token', { token: 't' }));
    expect(urls).to.include(url('src/kube/direct-transport.ts'));
    expect(clientNode(urls)).to.deep.equal([]);
  });

  it('makes requests with the undici Agent module alone, in a process that never loads the undici root', async () => {
    const server = http.createServer((req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url })),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const file = await kubeconfig(
        'local',
        { token: 't' },
        `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      );
      const urls = await resolvedUrls('src/operator/main.ts', file, '/api/v1/namespaces');
      expect(urls).to.include('answer:{"path":"/api/v1/namespaces"}');
      expect(urls).to.include(url('node_modules/undici/lib/dispatcher/agent.js'));
      expect(urls).not.to.include(url('node_modules/undici/index.js'));
    } finally {
      server.close();
    }
  });

  it('a kubeconfig with an exec plugin loads it, only then (the detector can fail)', async () => {
    const file = await kubeconfig('exec', {
      exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'true', interactiveMode: 'Never' },
    });
    const urls = await resolvedUrls('src/operator/main.ts', file);
    expect(urls).to.include(url('src/kube/client-node-transport.ts'));
    expect(clientNode(urls)).not.to.deep.equal([]);
  });
});
