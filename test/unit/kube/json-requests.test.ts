import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { KubeJson, paths } from '../../../src/kube/json-requests.ts';

// Against a plain HTTP endpoint standing in for the API server: what goes over the wire, and what comes back.
describe('KubeJson (the hot-path writes as plain JSON requests)', () => {
  let server: http.Server;
  const seen: { method?: string; url?: string; type?: string; auth?: string; body: string }[] = [];
  let answer: { code: number; body: string } = { code: 200, body: '{}' };

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: req.url,
          type: req.headers['content-type'],
          auth: req.headers.authorization,
          body,
        });
        res.writeHead(answer.code, { 'content-type': 'application/json' }).end(answer.body);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  after(() => server.close());
  beforeEach(() => {
    seen.length = 0;
    answer = { code: 200, body: '{}' };
  });

  const client = (prefix = '') => {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: 'c',
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: 'u', token: 'secret-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return new KubeJson(kc);
  };

  it('creates with a JSON body and the KubeConfig credentials, and returns the parsed answer', async () => {
    answer = { code: 201, body: '{"metadata":{"name":"s","resourceVersion":"7"}}' };
    const created = await client().create<k8s.V1Secret>(paths.secrets('prod'), {
      metadata: { name: 's' },
      data: { a: 'Yg==' },
    });
    expect(created.metadata?.resourceVersion).to.equal('7');
    expect(seen).to.deep.equal([
      {
        method: 'POST',
        url: '/api/v1/namespaces/prod/secrets',
        type: 'application/json',
        auth: 'Bearer secret-token',
        body: '{"metadata":{"name":"s"},"data":{"a":"Yg=="}}',
      },
    ]);
  });

  it('patches with the content type of the patch strategy, under a server path prefix', async () => {
    const json = client('/k8s/clusters/c1/');
    await json.patch(paths.secret('prod', 's'), { data: { a: null } }, 'strategic');
    await json.patch(
      paths.customStatus('identity.svid.dev', 'v1alpha1', 'prod', 'workloadidentities', 'w'),
      { status: {} },
      'merge',
    );
    expect(seen.map((r) => [r.method, r.url, r.type])).to.deep.equal([
      [
        'PATCH',
        '/k8s/clusters/c1/api/v1/namespaces/prod/secrets/s',
        'application/strategic-merge-patch+json',
      ],
      [
        'PATCH',
        '/k8s/clusters/c1/apis/identity.svid.dev/v1alpha1/namespaces/prod/workloadidentities/w/status',
        'application/merge-patch+json',
      ],
    ]);
  });

  it('escapes names into the path', () => {
    expect(paths.secret('a/b', 'c?d')).to.equal('/api/v1/namespaces/a%2Fb/secrets/c%3Fd');
  });

  it('throws an ApiException with the status code and the body, as client-node does', async () => {
    answer = { code: 409, body: '{"kind":"Status","message":"the object has been modified","code":409}' };
    const err = await client()
      .patch(paths.secret('prod', 's'), {}, 'strategic')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).to.be.instanceOf(k8s.ApiException);
    expect((err as k8s.ApiException<string>).code).to.equal(409);
    expect((err as k8s.ApiException<string>).body).to.equal(answer.body);
  });

  it('throws on an answer that is not JSON', async () => {
    answer = { code: 200, body: 'not json' };
    const err = await client()
      .get(paths.secret('prod', 's'))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).to.be.instanceOf(SyntaxError);
  });
});
