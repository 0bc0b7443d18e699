import { expect } from 'chai';
import fc from 'fast-check';
import path from 'node:path';
import { stringify } from 'yaml';
import { KubeconfigError, resolveKubeconfig, type DirectConfig } from '../../../src/kube/kubeconfig.ts';

const FILE = '/home/me/.kube/config';
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A kubeconfig with one context `c` → cluster `k`, user `u`, with the given cluster and user fields. */
function doc(cluster: Record<string, unknown>, user: Record<string, unknown> = {}, extra: object = {}) {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'k', cluster: { server: 'https://10.0.0.1:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    'current-context': 'c',
    ...extra,
  });
}

const direct = (text: string): DirectConfig => {
  const r = resolveKubeconfig(text, FILE);
  if (r.kind !== 'direct') throw new Error(`delegated: ${r.why}`);
  return r.config;
};

const failure = (text: string): string => {
  try {
    resolveKubeconfig(text, FILE);
  } catch (err) {
    expect(err).to.be.instanceOf(KubeconfigError);
    return (err as Error).message;
  }
  throw new Error('resolved, expected a KubeconfigError');
};

describe('resolveKubeconfig (the current context of a kubeconfig)', () => {
  it('resolves inline data, decoding base64', () => {
    const c = direct(
      doc(
        { 'certificate-authority-data': b64(PEM), 'tls-server-name': 'kubernetes' },
        { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
      ),
    );
    expect(c).to.deep.equal({
      server: 'https://10.0.0.1:6443',
      ca: { data: Buffer.from(PEM) },
      cert: { data: Buffer.from('CERT') },
      key: { data: Buffer.from('KEY') },
      servername: 'kubernetes',
      insecureSkipTlsVerify: false,
    });
  });

  it('resolves relative file paths against the kubeconfig directory, absolute ones as they are', () => {
    const c = direct(
      doc(
        { 'certificate-authority': 'pki/ca.crt' },
        { 'client-certificate': '/etc/k/admin.crt', 'client-key': '../admin.key', tokenFile: 'tok' },
      ),
    );
    expect(c.ca).to.deep.equal({ file: '/home/me/.kube/pki/ca.crt' });
    expect(c.cert).to.deep.equal({ file: '/etc/k/admin.crt' });
    expect(c.key).to.deep.equal({ file: '/home/me/admin.key' });
    expect(c.tokenFile).to.equal('/home/me/.kube/tok');
  });

  it('resolves paths of a relative kubeconfig path against the working directory', () => {
    const r = resolveKubeconfig(doc({ 'certificate-authority': 'ca.crt' }), 'conf/kc.yaml');
    expect(r.kind === 'direct' && r.config.ca).to.deep.equal({ file: path.resolve('conf', 'ca.crt') });
  });

  it('keeps a token and the server path prefix (without a trailing slash)', () => {
    const c = direct(doc({ server: 'https://rancher.example/k8s/clusters/c1/' }, { token: 'abc' }));
    expect(c.server).to.equal('https://rancher.example/k8s/clusters/c1');
    expect(c.token).to.equal('abc');
  });

  it('skips TLS verification only when the kubeconfig says insecure-skip-tls-verify: true', () => {
    expect(direct(doc({})).insecureSkipTlsVerify).to.equal(false);
    expect(direct(doc({ 'insecure-skip-tls-verify': false })).insecureSkipTlsVerify).to.equal(false);
    expect(direct(doc({ 'insecure-skip-tls-verify': true })).insecureSkipTlsVerify).to.equal(true);
  });

  it('allows a context without a user (anonymous)', () => {
    const text = stringify({
      clusters: [{ name: 'k', cluster: { server: 'http://127.0.0.1:8080' } }],
      contexts: [{ name: 'c', context: { cluster: 'k' } }],
      'current-context': 'c',
    });
    expect(direct(text)).to.deep.equal({ server: 'http://127.0.0.1:8080', insecureSkipTlsVerify: false });
  });

  const delegated: [string, string, string][] = [
    [
      'an exec plugin',
      doc({}, { exec: { command: 'aws', apiVersion: 'client.authentication.k8s.io/v1' } }),
      'exec',
    ],
    ['an auth provider', doc({}, { 'auth-provider': { name: 'oidc' } }), 'auth-provider'],
    ['a proxy', doc({ 'proxy-url': 'http://proxy:3128' }), 'proxy-url'],
    ['basic auth', doc({}, { username: 'a', password: 'b' }), 'basic auth'],
    ['impersonation', doc({}, { as: 'someone' }), 'impersonation'],
  ];
  for (const [name, text, why] of delegated) {
    it(`leaves ${name} to @kubernetes/client-node`, () => {
      expect(resolveKubeconfig(text, FILE)).to.deep.equal({ kind: 'delegate', why });
    });
  }

  const invalid: [string, string, RegExp][] = [
    ['an empty file', '', /is empty; point KUBECONFIG at a kubeconfig file/],
    ['a blank file', ' \n\n', /is empty; point KUBECONFIG/],
    ['a YAML scalar', 'hello\n', /is empty or not a YAML mapping; point KUBECONFIG/],
    ['a YAML list', '- a\n- b\n', /is empty or not a YAML mapping/],
    ['broken YAML', 'a: [b\n', /is not valid YAML .*; fix the file/],
    [
      'no current-context',
      doc({}, {}, { 'current-context': '' }),
      /has no current-context; choose one with `kubectl config use-context NAME`/,
    ],
    [
      'an unknown context',
      doc({}, {}, { 'current-context': 'prod' }),
      /no context named "prod" in contexts \(there is: c\); choose one/,
    ],
    ['contexts that are not a list', doc({}, {}, { contexts: { c: {} } }), /contexts is not a list/],
    [
      'an unknown cluster',
      stringify({
        contexts: [{ name: 'c', context: { cluster: 'gone', user: 'u' } }],
        clusters: [],
        'current-context': 'c',
      }),
      /no cluster named "gone" in clusters \(there are: none\)/,
    ],
    [
      'an unknown user',
      stringify({
        clusters: [{ name: 'k', cluster: { server: 'https://a' } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'nobody' } }],
        'current-context': 'c',
      }),
      /no user named "nobody" in users/,
    ],
    [
      'a context without a cluster',
      stringify({ contexts: [{ name: 'c', context: { user: 'u' } }], 'current-context': 'c' }),
      /context "c" names no cluster/,
    ],
    [
      'a cluster without a server',
      doc({ server: '' }),
      /cluster "k" has no server; set it with `kubectl config set-cluster/,
    ],
    ['a server that is not a URL', doc({ server: '10.0.0.1:6443' }), /with scheme 10\.0\.0\.1:|is not a URL/],
    ['a server with another scheme', doc({ server: 'ftp://a' }), /with scheme ftp:; use https:\/\//],
    [
      'both certificate-authority and -data',
      doc({ 'certificate-authority': 'ca.crt', 'certificate-authority-data': b64(PEM) }),
      /cluster "k" gives both certificate-authority and certificate-authority-data; keep one of them/,
    ],
    [
      'both client-certificate and -data',
      doc({}, { 'client-certificate': 'a', 'client-certificate-data': b64('A'), 'client-key': 'k' }),
      /user "u" gives both client-certificate and client-certificate-data/,
    ],
    [
      'both client-key and -data',
      doc({}, { 'client-certificate': 'a', 'client-key': 'k', 'client-key-data': b64('K') }),
      /user "u" gives both client-key and client-key-data/,
    ],
    [
      'certificate-authority-data that is not base64',
      doc({ 'certificate-authority-data': '-----BEGIN CERTIFICATE-----' }),
      /certificate-authority-data that is not base64; encode the PEM with `base64 -w0`/,
    ],
    [
      'client-key-data with bad padding',
      doc({}, { 'client-certificate-data': b64('A'), 'client-key-data': 'QUJD=' }),
      /client-key-data that is not base64/,
    ],
    [
      'a certificate without a key',
      doc({}, { 'client-certificate-data': b64('A') }),
      /client certificate without a key; give both/,
    ],
    ['a key without a certificate', doc({}, { 'client-key': 'k.pem' }), /client key without a certificate/],
    [
      'insecure-skip-tls-verify as a string',
      doc({ 'insecure-skip-tls-verify': 'yes' }),
      /insecure-skip-tls-verify "yes"; write true or false/,
    ],
    [
      'insecure-skip-tls-verify next to a CA',
      doc({ 'insecure-skip-tls-verify': true, 'certificate-authority-data': b64(PEM) }),
      /gives a certificate authority and insecure-skip-tls-verify: true; remove insecure-skip-tls-verify/,
    ],
    ['a token that is not a string', doc({}, { token: 42 }), /user "u" has a token that is not a string/],
  ];
  for (const [name, text, reason] of invalid) {
    it(`rejects ${name}, saying what is wrong and how to fix it`, () => {
      const message = failure(text);
      expect(message).to.match(reason);
      expect(message).to.contain(FILE);
    });
  }

  it('never puts inline key material into an error', () => {
    const key = b64('-----BEGIN PRIVATE KEY-----SECRET');
    const message = failure(doc({}, { 'client-key-data': key }));
    expect(message).not.to.contain(key);
    expect(message).not.to.contain('SECRET');
  });

  it('answers any document with a resolution or a KubeconfigError, nothing else', () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
    const entry = (field: string) =>
      fc.record({
        name: fc.constantFrom('c', 'k', 'u', 'x'),
        [field]: fc.dictionary(
          fc.constantFrom(
            'server',
            'cluster',
            'user',
            'certificate-authority',
            'certificate-authority-data',
            'client-certificate',
            'client-certificate-data',
            'client-key',
            'client-key-data',
            'token',
            'tokenFile',
            'exec',
            'insecure-skip-tls-verify',
            'tls-server-name',
            'proxy-url',
          ),
          value,
        ),
      });
    const kubeconfig = fc.record(
      {
        clusters: fc.oneof(fc.array(entry('cluster')), value),
        users: fc.oneof(fc.array(entry('user')), value),
        contexts: fc.oneof(fc.array(entry('context')), value),
        'current-context': fc.oneof(fc.constantFrom('c', 'x'), value),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          kubeconfig.map((d) => stringify(d)),
          fc.string(),
        ),
        (text) => {
          try {
            const r = resolveKubeconfig(text, FILE);
            expect(['direct', 'delegate']).to.include(r.kind);
          } catch (err) {
            expect(err).to.be.instanceOf(KubeconfigError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
