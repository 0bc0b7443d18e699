import { expect } from 'chai';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { inCluster, inClusterConfig } from '../../../src/kube/in-cluster.ts';
import { loadKubeClient, loadTransport } from '../../../src/kube/load.ts';
import { paths } from '../../../src/kube/client.ts';

describe('finding the API server configuration', () => {
  let dir: string;
  let server: http.Server;
  let auth: (string | undefined)[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kube-load-'));
    server = http.createServer((req, res) => {
      auth.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"Namespace"}');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => (auth = []));

  const serverUrl = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = async (name: string, user: Record<string, unknown>, cluster: object = {}) => {
    const file = path.join(dir, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(
      file,
      stringify({
        clusters: [{ name: 'k', cluster: { server: serverUrl(), ...cluster } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    return file;
  };

  describe('in-cluster', () => {
    const table: [string, NodeJS.ProcessEnv, string | RegExp][] = [
      [
        'an IPv4 address',
        { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
        'https://10.96.0.1',
      ],
      [
        'a host name and port',
        { KUBERNETES_SERVICE_HOST: 'kubernetes.default.svc', KUBERNETES_SERVICE_PORT: '6443' },
        'https://kubernetes.default.svc:6443',
      ],
      [
        'an IPv6 address, bracketed',
        { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' },
        'https://[fd00:10:96::1]',
      ],
      [
        'an IPv6 address already bracketed',
        { KUBERNETES_SERVICE_HOST: '[::1]', KUBERNETES_SERVICE_PORT: '8443' },
        'https://[::1]:8443',
      ],
      [
        'no port',
        { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
        /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set \(set KUBECONFIG/,
      ],
      [
        'a port that is not a number',
        { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: 'https' },
        /KUBERNETES_SERVICE_PORT is "https", not a port number: unset it or set 1-65535/,
      ],
      ['port 0', { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '0' }, /not a port number/],
      [
        'port 70000',
        { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '70000' },
        /not a port number/,
      ],
      [
        'a host with a path',
        { KUBERNETES_SERVICE_HOST: 'a b', KUBERNETES_SERVICE_PORT: '443' },
        /KUBERNETES_SERVICE_HOST is "a b", not a host name or address/,
      ],
    ];
    for (const [name, env, expected] of table) {
      it(`${typeof expected === 'string' ? 'uses' : 'rejects'} ${name}`, () => {
        if (typeof expected === 'string') {
          expect(inCluster(env)).to.equal(true);
          expect(inClusterConfig(env, '/sa')).to.deep.equal({
            server: expected,
            ca: { file: '/sa/ca.crt' },
            tokenFile: '/sa/token',
            insecureSkipTlsVerify: false,
          });
        } else expect(() => inClusterConfig(env, '/sa')).to.throw(expected);
      });
    }
  });

  it('prefers KUBECONFIG, and authenticates with its token', async () => {
    const file = await kubeconfig('a/config', { token: 'from-kubeconfig' });
    const client = await loadKubeClient({ KUBECONFIG: file }, { home: path.join(dir, 'nohome') });
    await client.get(paths.namespaces());
    await client.close();
    expect(auth).to.deep.equal(['Bearer from-kubeconfig']);
  });

  it('reads a tokenFile relative to the kubeconfig', async () => {
    const file = await kubeconfig('b/config', { tokenFile: 'token' });
    await writeFile(path.join(dir, 'b', 'token'), 'from-file\n');
    const client = await loadKubeClient({ KUBECONFIG: file });
    await client.get(paths.namespaces());
    await client.close();
    expect(auth).to.deep.equal(['Bearer from-file']);
  });

  it('falls back to ~/.kube/config', async () => {
    await kubeconfig('home/.kube/config', { token: 'from-home' });
    const client = await loadKubeClient({}, { home: path.join(dir, 'home') });
    await client.get(paths.namespaces());
    await client.close();
    expect(auth).to.deep.equal(['Bearer from-home']);
  });

  it('falls back to the in-cluster configuration', async () => {
    const sa = path.join(dir, 'sa');
    await mkdir(sa, { recursive: true });
    await writeFile(path.join(sa, 'ca.crt'), '');
    await writeFile(path.join(sa, 'token'), 'sa-token');
    const t = await loadTransport(
      { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      { home: path.join(dir, 'nohome'), serviceAccountDir: sa },
    );
    expect(t.description).to.equal('https://10.96.0.1 (bearer token)');
    expect((await t.connection()).headers).to.deep.equal({ authorization: 'Bearer sa-token' });
    await t.close();
  });

  const failures: [string, () => Promise<NodeJS.ProcessEnv>, RegExp][] = [
    [
      'nothing configured',
      async () => ({}),
      /no Kubernetes configuration found: KUBECONFIG is not set, .*nohome\/\.kube\/config does not exist, and KUBERNETES_SERVICE_HOST\/PORT are not set; set KUBECONFIG/,
    ],
    [
      'a KUBECONFIG that does not exist',
      async () => ({ KUBECONFIG: path.join(dir, 'missing') }),
      /kubeconfig .*missing cannot be read \(ENOENT\); set KUBECONFIG to an existing kubeconfig file/,
    ],
    [
      'a certificate authority file that does not exist',
      async () => ({ KUBECONFIG: await kubeconfig('c/config', {}, { 'certificate-authority': 'ca.pem' }) }),
      /cannot read the certificate authority file .*\/c\/ca\.pem \(ENOENT\): fix the path in the kubeconfig/,
    ],
    [
      'a kubeconfig naming an unknown context',
      async () => {
        const file = path.join(dir, 'd-config');
        await writeFile(file, stringify({ contexts: [], 'current-context': 'prod' }));
        return { KUBECONFIG: file };
      },
      /no context named "prod" in contexts \(there are: none\); choose one with `kubectl config use-context NAME`/,
    ],
  ];
  for (const [name, env, reason] of failures) {
    it(`says what is wrong and how to fix it for ${name}`, async () => {
      const err = await loadTransport(await env(), { home: path.join(dir, 'nohome') }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as Error).message).to.match(reason);
    });
  }

  it('hands an exec plugin kubeconfig to @kubernetes/client-node, whose credentials reach the server', async () => {
    const plugin = path.join(dir, 'plugin.mjs');
    await writeFile(
      plugin,
      `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } }));\n`,
    );
    const file = await kubeconfig(
      'e/config',
      {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1',
          command: process.execPath,
          args: [plugin],
          interactiveMode: 'Never',
        },
      },
      { 'insecure-skip-tls-verify': true },
    ); // client-node refuses http:// without it
    const client = await loadKubeClient({ KUBECONFIG: file });
    expect(client.transport.description).to.match(/through @kubernetes\/client-node/);
    await client.get(paths.namespaces());
    expect(auth).to.deep.equal(['Bearer from-exec']);
  });
});
