import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { http } from '../builtins.ts';

export interface Probes {
  healthy(): boolean;
  ready(): boolean;
}

/** /healthz and /readyz. */
export function healthServer(probes: Probes): Server {
  return http.createServer((req, res) => {
    const check =
      req.url === '/healthz' ? probes.healthy() : req.url === '/readyz' ? probes.ready() : undefined;
    if (check === undefined) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(check ? 200 : 503, { 'content-type': 'text/plain' }).end(check ? 'ok\n' : 'not ready\n');
  });
}

/**
 * /metrics in the Prometheus text format. `?name=a&name=b` answers only those metrics (unknown names are
 * skipped): the per-identity gauges make the whole page megabytes at 10,000 identities, far too costly to
 * render every second for a caller that needs a few counters (the bench samples its queue once a second).
 */
export function metricsServer(registry: Registry): Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    const names = url.searchParams.getAll('name');
    const body =
      names.length === 0
        ? registry.metrics()
        : Promise.all(
            [...new Set(names)]
              .filter((n) => registry.getSingleMetric(n) !== undefined)
              .map((n) => registry.getSingleMetricAsString(n)),
          ).then((parts) => parts.map((p) => `${p}\n`).join(''));
    body
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch(() => res.writeHead(500).end());
  });
}

export async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return (server.address() as AddressInfo).port;
}
