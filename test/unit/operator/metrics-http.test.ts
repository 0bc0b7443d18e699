import { expect } from 'chai';
import type http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { listen, metricsServer } from '../../../src/operator/http.ts';

describe('operator /metrics: answering only the metrics named', () => {
  let server: http.Server;
  let base: string;

  before(async () => {
    const registry = new Registry();
    new Counter({ name: 'a_total', help: 'a', registers: [registry] }).inc(3);
    const g = new Gauge({ name: 'per_identity', help: 'b', labelNames: ['name'], registers: [registry] });
    for (let i = 0; i < 100; i++) g.set({ name: `id-${i}` }, i);
    new Gauge({ name: 'depth', help: 'c', registers: [registry] }).set(7);
    server = metricsServer(registry);
    base = `http://127.0.0.1:${await listen(server, '127.0.0.1', 0)}`;
  });
  after(() => server.close());

  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`);
    return { status: res.status, text: await res.text() };
  };

  it('without a name: every metric', async () => {
    const { status, text } = await get('/metrics');
    expect(status).to.equal(200);
    expect(text).to.include('a_total 3').and.include('per_identity{name="id-99"} 99').and.include('depth 7');
  });

  const cases: [string, string, string[], string[]][] = [
    ['two names', '?name=a_total&name=depth', ['a_total 3', 'depth 7'], ['per_identity']],
    ['an unknown name is skipped', '?name=nope&name=depth', ['depth 7'], ['a_total', 'nope']],
    ['a repeated name once', '?name=depth&name=depth', ['depth 7'], ['a_total']],
    ['only unknown names: an empty page', '?name=nope', [], ['a_total', 'depth', 'per_identity']],
    ['a name with a label-like suffix is not a metric', '?name=depth%7Bx%3D%22y%22%7D', [], ['depth']],
  ];
  for (const [what, query, present, absent] of cases) {
    it(`${what}`, async () => {
      const { status, text } = await get(`/metrics${query}`);
      expect(status).to.equal(200);
      for (const p of present) expect(text).to.include(p);
      for (const a of absent) expect(text).not.to.include(a);
      if (present.includes('depth 7')) expect(text.match(/^depth 7$/gm)).to.have.length(1);
    });
  }

  it('other paths are 404', async () => {
    expect((await get('/metrics/x')).status).to.equal(404);
    expect((await get('/other?name=depth')).status).to.equal(404);
  });
});
