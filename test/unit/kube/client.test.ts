import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as k8s from '@kubernetes/client-node';
import { KubeClient, MAX_LIST_PAGES, paths, queryString } from '../../../src/kube/client.ts';
import { directTransport } from '../../../src/kube/direct-transport.ts';
import { isConflict, isGone, isNotFound, isRetryable, KubeApiError } from '../../../src/kube/errors.ts';

// Against a plain HTTP endpoint standing in for the API server: what goes over the wire, and what comes back.
describe('KubeClient (JSON requests to the API server)', () => {
  let server: http.Server;
  const seen: { method?: string; url?: string; type?: string; auth?: string; body: string }[] = [];
  let answer: (url: string) => { code: number; body: string } = () => ({ code: 200, body: '{}' });
  const clients: KubeClient[] = [];

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
        const a = answer(req.url ?? '');
        res.writeHead(a.code, { 'content-type': 'application/json' }).end(a.body);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    server.close();
  });
  beforeEach(() => {
    seen.length = 0;
    answer = () => ({ code: 200, body: '{}' });
  });

  const client = async (prefix = '') => {
    const c = new KubeClient(
      await directTransport({
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`,
        token: 'secret-token',
        insecureSkipTlsVerify: false,
      }),
    );
    clients.push(c);
    return c;
  };

  const rejection = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('resolved, expected a rejection');
      },
      (e: unknown) => e,
    );

  it('creates with a JSON body and the bearer token, and returns the parsed answer', async () => {
    answer = () => ({ code: 201, body: '{"metadata":{"name":"s","resourceVersion":"7"}}' });
    const created = await (
      await client()
    ).create<k8s.V1Secret>(paths.secrets('prod'), { metadata: { name: 's' }, data: { a: 'Yg==' } });
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

  it('sends each verb with its content type, under a server path prefix', async () => {
    const c = await client('/k8s/clusters/c1/');
    const s = paths.secret('prod', 's');
    await c.get(s);
    await c.replace(s, { metadata: { name: 's' } });
    await c.patch(s, { data: { a: null } }, 'strategic');
    await c.patch(
      paths.customStatus('identity.svid.dev', 'v1alpha1', 'prod', 'workloadidentities', 'w'),
      {},
      'merge',
    );
    await c.patch(s, [{ op: 'remove', path: '/data/a' }], 'json');
    await c.patch(s, { metadata: { name: 's' } }, 'apply', { fieldManager: 'svid-operator', force: true });
    await c.delete(s);
    expect(seen.map((r) => [r.method, r.url, r.type])).to.deep.equal([
      ['GET', '/k8s/clusters/c1/api/v1/namespaces/prod/secrets/s', undefined],
      ['PUT', '/k8s/clusters/c1/api/v1/namespaces/prod/secrets/s', 'application/json'],
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
      ['PATCH', '/k8s/clusters/c1/api/v1/namespaces/prod/secrets/s', 'application/json-patch+json'],
      [
        'PATCH',
        '/k8s/clusters/c1/api/v1/namespaces/prod/secrets/s?fieldManager=svid-operator&force=true',
        'application/apply-patch+yaml',
      ],
      ['DELETE', '/k8s/clusters/c1/api/v1/namespaces/prod/secrets/s', undefined],
    ]);
  });

  it('refuses an apply patch without a fieldManager before sending anything', async () => {
    const c = await client();
    expect(() => c.patch(paths.secret('a', 'b'), {}, 'apply')).to.throw(
      /an apply patch needs a fieldManager/,
    );
    expect(seen).to.deep.equal([]);
  });

  it('escapes names into paths and query values into the query', () => {
    expect(paths.secret('a/b', 'c?d')).to.equal('/api/v1/namespaces/a%2Fb/secrets/c%3Fd');
    expect(paths.custom('g', 'v', '', 'p')).to.equal('/apis/g/v/p');
    expect(queryString({ labelSelector: 'a=b,c in (d)', limit: 5, continue: undefined, x: '' })).to.equal(
      '?labelSelector=a%3Db%2Cc+in+%28d%29&limit=5',
    );
    expect(queryString({})).to.equal('');
  });

  it('lists every page through continue tokens', async () => {
    answer = (url) => {
      const token = new URL(url, 'http://x').searchParams.get('continue');
      const page = token ? Number(token) : 0;
      return {
        code: 200,
        body: JSON.stringify({
          items: [{ n: page * 2 }, { n: page * 2 + 1 }],
          metadata: { resourceVersion: `rv${page}`, continue: page < 2 ? String(page + 1) : '' },
        }),
      };
    };
    const all = await (
      await client()
    ).listAll<{ n: number }>(paths.allSecrets(), { query: { labelSelector: 'a=b' } }, 2);
    expect(all.items.map((i) => i.n)).to.deep.equal([0, 1, 2, 3, 4, 5]);
    expect(all.metadata.resourceVersion).to.equal('rv2');
    expect(seen.map((r) => r.url)).to.deep.equal([
      '/api/v1/secrets?labelSelector=a%3Db&limit=2',
      '/api/v1/secrets?labelSelector=a%3Db&limit=2&continue=1',
      '/api/v1/secrets?labelSelector=a%3Db&limit=2&continue=2',
    ]);
  });

  it('stops a list whose continue token never ends, after its page bound', async () => {
    answer = () => ({ code: 200, body: '{"items":[],"metadata":{"continue":"again"}}' });
    const err = await rejection((await client()).listAll(paths.allSecrets(), {}, 500, 7));
    expect((err as Error).message).to.match(/more than 7 pages of 500; list with a selector/);
    expect(seen).to.have.length(7);
    expect(MAX_LIST_PAGES).to.equal(10_000);
  });

  const status = (code: number, reason: string, message: string) =>
    JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
  const failures: {
    name: string;
    code: number;
    body: string;
    reason: string;
    statusMessage: string;
    message: RegExp;
    kind: 'notFound' | 'conflict' | 'gone' | 'retryable' | 'other';
  }[] = [
    {
      name: '404 NotFound',
      code: 404,
      body: status(404, 'NotFound', 'secrets "s" not found'),
      reason: 'NotFound',
      statusMessage: 'secrets "s" not found',
      message:
        /^GET \/api\/v1\/namespaces\/prod\/secrets\/s: the API server answered 404 NotFound: secrets "s" not found$/,
      kind: 'notFound',
    },
    {
      name: '409 Conflict',
      code: 409,
      body: status(
        409,
        'Conflict',
        'the object has been modified; please apply your changes to the latest version',
      ),
      reason: 'Conflict',
      statusMessage: 'the object has been modified; please apply your changes to the latest version',
      message: /answered 409 Conflict: the object has been modified/,
      kind: 'conflict',
    },
    {
      name: '409 AlreadyExists',
      code: 409,
      body: status(409, 'AlreadyExists', 'secrets "s" already exists'),
      reason: 'AlreadyExists',
      statusMessage: 'secrets "s" already exists',
      message: /answered 409 AlreadyExists: secrets "s" already exists/,
      kind: 'conflict',
    },
    {
      name: '410 Expired',
      code: 410,
      body: status(410, 'Expired', 'too old resource version: 1 (200)'),
      reason: 'Expired',
      statusMessage: 'too old resource version: 1 (200)',
      message: /answered 410 Expired: too old resource version/,
      kind: 'gone',
    },
    {
      name: '429 TooManyRequests',
      code: 429,
      body: status(429, 'TooManyRequests', 'too many requests, please try again later'),
      reason: 'TooManyRequests',
      statusMessage: 'too many requests, please try again later',
      message: /answered 429 TooManyRequests/,
      kind: 'retryable',
    },
    {
      name: '500 with a Status',
      code: 500,
      body: status(500, 'InternalError', 'etcdserver: request timed out'),
      reason: 'InternalError',
      statusMessage: 'etcdserver: request timed out',
      message: /answered 500 InternalError: etcdserver: request timed out/,
      kind: 'retryable',
    },
    {
      name: '503 from a proxy, an HTML body',
      code: 503,
      body: '<html>\n<body>Service Unavailable</body>\n</html>',
      reason: '',
      statusMessage: '',
      message: /answered 503: <html> <body>Service Unavailable<\/body> <\/html>$/,
      kind: 'retryable',
    },
    {
      name: '403 with a JSON body that is not a Status',
      code: 403,
      body: '{"error":"forbidden"}',
      reason: '',
      statusMessage: '',
      message: /answered 403: \{"error":"forbidden"\}$/,
      kind: 'other',
    },
    {
      name: '401 with an empty body',
      code: 401,
      body: '',
      reason: '',
      statusMessage: '',
      message: /answered 401$/,
      kind: 'other',
    },
    {
      name: '422 with a Status whose fields have the wrong types',
      code: 422,
      body: '{"kind":"Status","reason":7,"message":["x"]}',
      reason: '',
      statusMessage: '',
      message: /answered 422: \{"kind":"Status"/,
      kind: 'other',
    },
  ];
  for (const f of failures) {
    it(`throws a KubeApiError for ${f.name}`, async () => {
      answer = () => ({ code: f.code, body: f.body });
      const err = (await rejection((await client()).get(paths.secret('prod', 's')))) as KubeApiError;
      expect(err).to.be.instanceOf(KubeApiError);
      expect(err.code).to.equal(f.code);
      expect(err.reason).to.equal(f.reason);
      expect(err.statusMessage).to.equal(f.statusMessage);
      expect(err.body).to.equal(f.body);
      expect(err.message).to.match(f.message);
      expect({
        notFound: isNotFound(err),
        conflict: isConflict(err),
        gone: isGone(err),
        retryable: isRetryable(err),
      }).to.deep.equal({
        notFound: f.kind === 'notFound',
        conflict: f.kind === 'conflict',
        gone: f.kind === 'gone',
        retryable: f.kind === 'retryable',
      });
    });
  }

  it('keeps a huge error body bounded in the error', async () => {
    answer = () => ({ code: 500, body: 'x'.repeat(100_000) });
    const err = (await rejection((await client()).get('/api/v1/namespaces'))) as KubeApiError;
    expect(err.body.length).to.equal(4000);
    expect(err.message.length).to.be.below(600);
  });

  it('never puts the request body (key material) into an error', async () => {
    answer = () => ({ code: 422, body: status(422, 'Invalid', 'Secret "s" is invalid') });
    const err = (await rejection(
      (await client()).create(paths.secrets('prod'), { data: { 'tls.key': 'UFJJVkFURSBLRVk=' } }),
    )) as KubeApiError;
    expect(`${err.message} ${err.body} ${JSON.stringify(err)}`).not.to.contain('UFJJVkFURSBLRVk=');
  });

  it('throws on a 2xx answer that is not JSON, saying so', async () => {
    answer = () => ({ code: 200, body: 'not json' });
    const err = await rejection((await client()).get(paths.secret('prod', 's')));
    expect((err as Error).message).to.equal(
      'GET /api/v1/namespaces/prod/secrets/s: the API server answered 200 with a body that is not JSON: not json',
    );
  });

  it('watches through the same connection, reporting events and the server close', async () => {
    answer = () => ({
      code: 200,
      body: '{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}\n',
    });
    const events: [string, unknown][] = [];
    let opened = false;
    const end = await (
      await client()
    ).watch({
      path: paths.secrets('prod'),
      query: { resourceVersion: '5', timeoutSeconds: 10 },
      signal: new AbortController().signal,
      deadConnectionMs: 60_000,
      onOpen: () => (opened = true),
      onEvent: (type, object) => events.push([type, object]),
    });
    expect(end).to.deep.equal({ kind: 'closed' });
    expect(opened).to.equal(true);
    expect(events).to.deep.equal([
      ['ADDED', { metadata: { name: 'a' } }],
      ['BOOKMARK', { metadata: { resourceVersion: '9' } }],
    ]);
    expect(seen.map((r) => [r.url, r.auth])).to.deep.equal([
      [
        '/api/v1/namespaces/prod/secrets?watch=true&resourceVersion=5&timeoutSeconds=10',
        'Bearer secret-token',
      ],
    ]);
  });

  it('reports a refused watch with its status', async () => {
    answer = () => ({ code: 410, body: status(410, 'Expired', 'too old') });
    const end = await (
      await client()
    ).watch({
      path: paths.secrets('prod'),
      query: {},
      signal: new AbortController().signal,
      deadConnectionMs: 60_000,
      onOpen: () => undefined,
      onEvent: () => undefined,
    });
    expect(end).to.deep.equal({ kind: 'status', code: 410, body: status(410, 'Expired', 'too old') });
  });
});
