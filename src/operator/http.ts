import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Probes {
  healthy(): boolean;
  ready(): boolean;
}

/** /healthz and /readyz. */
export function healthServer(probes: Probes): http.Server {
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

/** /metrics in the Prometheus text format. */
export function metricsServer(registry: Registry): http.Server {
  return http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch(() => res.writeHead(500).end());
  });
}

export async function listen(server: http.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return (server.address() as AddressInfo).port;
}
