import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { FaultProxy, statusBody } from '../harness/fault-proxy.ts';
import { until } from '../harness/identities.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const run = promisify(execFile);

function apiError(err: unknown): k8s.ApiException<k8s.V1Status> {
  expect(err).to.be.instanceOf(k8s.ApiException);
  const e = err as k8s.ApiException<k8s.V1Status | string>;
  // client-node leaves the body a string when it cannot deserialize it; a real Status parses.
  const body = typeof e.body === 'string' ? (JSON.parse(e.body) as k8s.V1Status) : e.body;
  return Object.assign(e, { body }) as k8s.ApiException<k8s.V1Status>;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the request to fail');
}

describe('fault proxy in front of the API server', function () {
  this.timeout(60_000);
  let cp: ControlPlane;
  let direct: k8s.CoreV1Api;
  let proxy: FaultProxy;
  let viaProxy: k8s.CoreV1Api;
  let ns: string;

  before(async () => {
    cp = await getControlPlane();
    direct = kubeConfig(cp).makeApiClient(k8s.CoreV1Api);
  });

  beforeEach(async () => {
    ns = `fp-${randomBytes(3).toString('hex')}`;
    await direct.createNamespace({ body: { metadata: { name: ns } } });
    proxy = await FaultProxy.forControlPlane(cp);
    viaProxy = proxy.kubeConfig().makeApiClient(k8s.CoreV1Api);
  });

  afterEach(async () => {
    await proxy.close();
    await direct.deleteNamespace({ name: ns });
  });

  const configMap = (name: string) => ({ metadata: { name }, data: { k: 'v' } });

  it('passes requests through with its own certificate, for client-node and for kubectl via writeKubeconfig', async () => {
    const namespace = await viaProxy.readNamespace({ name: ns });
    expect(namespace.metadata?.name).to.equal(ns);
    await viaProxy.createNamespacedConfigMap({ namespace: ns, body: configMap('through') });
    const back = await direct.readNamespacedConfigMap({ namespace: ns, name: 'through' });
    expect(back.data).to.deep.equal({ k: 'v' });

    const dir = await mkdtemp(path.join(os.tmpdir(), 'fp-kubeconfig-'));
    try {
      const file = path.join(dir, 'kubeconfig');
      await proxy.writeKubeconfig(file);
      const { stdout } = await run(cp.kubectl, [
        `--kubeconfig=${file}`,
        '-n',
        ns,
        'get',
        'configmap',
        'through',
        '-o',
        'name',
      ]);
      expect(stdout.trim()).to.equal('configmap/through');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const stats = proxy.stats();
    expect(stats.requests).to.be.at.least(3);
    expect(stats.forwarded).to.equal(stats.requests);
    expect(stats.injected).to.equal(0);
  });

  it("'hold' applies the request and keeps its answer from the client until the hold ends", async () => {
    proxy.addRule({ name: 'hold-create', method: 'POST', fault: { kind: 'hold', ms: 5000 }, times: 1 });
    let answered = false;
    const create = viaProxy
      .createNamespacedConfigMap({ namespace: ns, body: configMap('held') })
      .then((cm) => ((answered = true), cm));
    // The API server has stored it while the client still waits for the answer.
    const stored = await until('the held create to be stored', 30_000, async () =>
      direct.readNamespacedConfigMap({ namespace: ns, name: 'held' }).catch(() => undefined),
    );
    expect(proxy.heldResponses()).to.equal(1);
    expect(answered).to.equal(false);
    const created = await create;
    expect(created.metadata?.resourceVersion).to.equal(stored.metadata?.resourceVersion);
    expect(proxy.heldResponses()).to.equal(0);
    expect(proxy.stats().rules).to.deep.equal([{ name: 'hold-create', matched: 1, injected: 1 }]);
  });

  it('answers 429 with Retry-After for the next N matching requests, then lets them pass', async () => {
    await direct.createNamespacedConfigMap({ namespace: ns, body: configMap('limited') });
    proxy.addRule({
      name: 'throttle-reads',
      method: 'get',
      path: new RegExp(`/namespaces/${ns}/configmaps/limited$`),
      fault: { kind: 'status', code: 429, retryAfterSeconds: 2 },
      times: 2,
    });
    for (let i = 0; i < 2; i++) {
      const err = apiError(
        await rejection(viaProxy.readNamespacedConfigMap({ namespace: ns, name: 'limited' })),
      );
      expect(err.code).to.equal(429);
      expect(err.headers['retry-after']).to.equal('2');
      expect(err.body).to.deep.include({
        kind: 'Status',
        status: 'Failure',
        reason: 'TooManyRequests',
        code: 429,
      });
      expect(err.body.details?.retryAfterSeconds).to.equal(2);
    }
    const ok = await viaProxy.readNamespacedConfigMap({ namespace: ns, name: 'limited' });
    expect(ok.data).to.deep.equal({ k: 'v' });
    // Other paths and methods are not touched by the rule.
    await viaProxy.listNamespacedConfigMap({ namespace: ns });
    expect(proxy.stats().rules).to.deep.equal([{ name: 'throttle-reads', matched: 3, injected: 2 }]);
    expect(proxy.stats().injected).to.equal(2);
  });

  it('answers 409, 500 and 503 with the Status body kube-apiserver would send, without reaching it', async () => {
    await direct.createNamespacedConfigMap({ namespace: ns, body: configMap('target') });
    const cases: [number, string][] = [
      [409, 'Conflict'],
      [500, 'InternalError'],
      [503, 'ServiceUnavailable'],
    ];
    for (const [code, reason] of cases) {
      proxy.addRule({ name: `put-${code}`, method: 'PUT', fault: { kind: 'status', code }, times: 1 });
      const err = apiError(
        await rejection(
          viaProxy.replaceNamespacedConfigMap({
            namespace: ns,
            name: 'target',
            body: { metadata: { name: 'target' }, data: { k: `changed-${code}` } },
          }),
        ),
      );
      expect(err.code).to.equal(code);
      expect(err.body).to.deep.include({ reason, code });
      expect(err.body.details).to.deep.include({ name: 'target', kind: 'configmaps', group: '' });
      proxy.removeRule(`put-${code}`);
    }
    expect(statusBody(409, `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/l`).message).to.equal(
      'Operation cannot be fulfilled on leases.coordination.k8s.io "l": the object has been modified; please apply your changes to the latest version and try again',
    );
    const untouched = await direct.readNamespacedConfigMap({ namespace: ns, name: 'target' });
    expect(untouched.data).to.deep.equal({ k: 'v' });
    expect(proxy.stats().forwarded).to.equal(0);
    expect(proxy.stats().rules.map((r) => r.injected)).to.deep.equal([1, 1, 1]);
  });

  it('injects with a probability, drawn from the random source it was given', async () => {
    await proxy.close();
    const draws = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7];
    let i = 0;
    proxy = await FaultProxy.forControlPlane(cp, { random: () => draws[i++ % draws.length] ?? 0 });
    viaProxy = proxy.kubeConfig().makeApiClient(k8s.CoreV1Api);
    proxy.addRule({ name: 'flaky', method: 'GET', fault: { kind: 'status', code: 500 }, probability: 0.5 });
    const outcomes: string[] = [];
    for (let n = 0; n < 6; n++) {
      try {
        await viaProxy.readNamespace({ name: ns });
        outcomes.push('ok');
      } catch (err) {
        outcomes.push(String(apiError(err).code));
      }
    }
    expect(outcomes).to.deep.equal(['500', 'ok', '500', 'ok', '500', 'ok']);
    expect(proxy.stats().rules).to.deep.equal([{ name: 'flaky', matched: 6, injected: 3 }]);
    expect(() => proxy.addRule({ name: 'bad', fault: { kind: 'drop' }, probability: 1.5 })).to.throw(
      RangeError,
    );
  });

  it('drops connections before the API server sees the request, or after it acted on it', async () => {
    proxy.addRule({ name: 'lost-request', method: 'POST', fault: { kind: 'drop' }, times: 1 });
    const before = await rejection(
      viaProxy.createNamespacedConfigMap({ namespace: ns, body: configMap('never') }),
    );
    expect(before).not.to.be.instanceOf(k8s.ApiException);
    const absent = apiError(
      await rejection(direct.readNamespacedConfigMap({ namespace: ns, name: 'never' })),
    );
    expect(absent.code).to.equal(404);

    proxy.addRule({
      name: 'lost-answer',
      method: 'POST',
      fault: { kind: 'drop', afterUpstream: true },
      times: 1,
    });
    const after = await rejection(
      viaProxy.createNamespacedConfigMap({ namespace: ns, body: configMap('made') }),
    );
    expect(after).not.to.be.instanceOf(k8s.ApiException);
    const made = await direct.readNamespacedConfigMap({ namespace: ns, name: 'made' });
    expect(made.data).to.deep.equal({ k: 'v' });
    // A retry now meets the object the lost request created.
    const retry = apiError(
      await rejection(viaProxy.createNamespacedConfigMap({ namespace: ns, body: configMap('made') })),
    );
    expect(retry.code).to.equal(409);
    expect(retry.body.reason).to.equal('AlreadyExists');
    expect(proxy.stats().rules).to.deep.equal([
      { name: 'lost-request', matched: 3, injected: 1 },
      { name: 'lost-answer', matched: 2, injected: 1 },
    ]);
  });

  it('delays matching requests', async () => {
    proxy.addRule({ name: 'slow', method: 'GET', fault: { kind: 'delay', ms: 800 }, times: 1 });
    const t0 = performance.now();
    await viaProxy.readNamespace({ name: ns });
    const slow = performance.now() - t0;
    const t1 = performance.now();
    await viaProxy.readNamespace({ name: ns });
    const fast = performance.now() - t1;
    expect(slow).to.be.at.least(800);
    expect(fast).to.be.lessThan(800);
  });

  describe('watches', () => {
    interface Watching {
      events: string[];
      done: Promise<unknown>;
      controller: AbortController;
    }

    async function watchConfigMaps(kc: k8s.KubeConfig): Promise<Watching> {
      const events: string[] = [];
      let resolveDone: (err: unknown) => void = () => undefined;
      const done = new Promise<unknown>((resolve) => (resolveDone = resolve));
      const controller = await new k8s.Watch(kc).watch(
        `/api/v1/namespaces/${ns}/configmaps`,
        {},
        (type, obj: k8s.V1ConfigMap) => {
          // kube-controller-manager puts its CA bundle into every namespace; only the test's own count.
          if (obj.metadata?.name !== 'kube-root-ca.crt') events.push(`${type} ${obj.metadata?.name}`);
        },
        (err) => resolveDone(err ?? 'closed'),
      );
      return { events, done, controller };
    }

    async function eventually(check: () => boolean, what: string): Promise<void> {
      const deadline = performance.now() + 10_000;
      while (!check()) {
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    it('streams watch events through the proxy until the stream is cut on demand', async () => {
      const w = await watchConfigMaps(proxy.kubeConfig());
      try {
        await eventually(() => proxy.openStreams().length === 1, 'the watch to be open');
        expect(proxy.openStreams()[0]?.path).to.match(/watch=true/);
        for (const name of ['one', 'two', 'three']) {
          await direct.createNamespacedConfigMap({ namespace: ns, body: configMap(name) });
        }
        await eventually(() => w.events.length === 3, 'three events');
        expect(w.events).to.deep.equal(['ADDED one', 'ADDED two', 'ADDED three']);

        let finished = false;
        void w.done.then(() => (finished = true));
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(finished, 'the watch ended before it was cut').to.equal(false);
        const t0 = performance.now();
        expect(proxy.cutStreams(/configmaps\?.*watch=true/)).to.equal(1);
        await w.done;
        expect(performance.now() - t0).to.be.lessThan(2_000);
        await eventually(() => proxy.openStreams().length === 0, 'the proxy to forget the stream');
        // Nothing arrives on a cut watch; a new one picks up from the API server again.
        await direct.createNamespacedConfigMap({ namespace: ns, body: configMap('four') });
        const again = await watchConfigMaps(proxy.kubeConfig());
        await eventually(() => again.events.length === 4, 'the new watch to list four');
        again.controller.abort();
        expect(w.events).to.have.length(3);
      } finally {
        w.controller.abort();
      }
    });

    it('cuts long-running watches a set time into the response by rule', async () => {
      proxy.addRule({ name: 'cut-watch', path: /watch=true/, fault: { kind: 'cut', afterMs: 500 } });
      const t0 = performance.now();
      const w = await watchConfigMaps(proxy.kubeConfig());
      try {
        await w.done;
        const lived = performance.now() - t0;
        expect(lived).to.be.at.least(500);
        expect(lived).to.be.lessThan(3_000);
        // A plain request is short and finishes before the cut; it neither matches nor counts.
        await viaProxy.readNamespace({ name: ns });
        expect(proxy.stats().rules).to.deep.equal([{ name: 'cut-watch', matched: 1, injected: 1 }]);
      } finally {
        w.controller.abort();
      }
    });
  });
});
