// Example mTLS client: `npm run example:client -- (--svid-dir DIR | --pod-certificate-dir DIR) --url URL --server-id SPIFFE_ID [--count N]`
// Prints each response, and a JSON line each time its own SVID is replaced; exits 1 if any request failed.
import net from 'node:net';
import { parseArgs } from 'node:util';
import { SvidDispatcher } from '@svid-operator/mtls';
import { fileSourceOptions, fileSourceUsage, openFileSource } from './file-source.ts';

const { values } = parseArgs({
  options: {
    ...fileSourceOptions,
    url: { type: 'string' },
    'server-id': { type: 'string' },
    count: { type: 'string', default: '1' },
    'interval-ms': { type: 'string', default: '1000' },
    'wait-reachable-ms': { type: 'string', default: '0' },
  },
});
const opening = openFileSource(values);
if (!opening || !values.url || !values['server-id']) {
  console.error(
    `usage: client ${fileSourceUsage} --url URL --server-id SPIFFE_ID [--count N] [--interval-ms MS] [--wait-reachable-ms MS]`,
  );
  process.exit(2);
}

const source = await opening;
console.log(JSON.stringify({ event: 'started', serial: source.current().serialNumber }));
source.on('update', (svid) =>
  console.log(JSON.stringify({ event: 'rotated', serial: svid.serialNumber, notAfter: svid.notAfter })),
);
const dispatcher = new SvidDispatcher(source, { serverId: values['server-id'] });
await waitReachable(new URL(values.url), Number(values['wait-reachable-ms']));
const count = Number(values.count);
let failed = 0;
for (let i = 1; i <= count; i++) {
  try {
    const res = await fetch(values.url, { dispatcher } as RequestInit);
    console.log(`${i} ${res.status} ${await res.text()}`);
    if (!res.ok) failed++;
  } catch (err) {
    failed++;
    console.log(`${i} error ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
  }
  if (i < count) await new Promise((r) => setTimeout(r, Number(values['interval-ms'])));
}
await dispatcher.close();
source.close();
process.exit(failed ? 1 : 0);

/**
 * Before the first request, waits (at most `ms`) until the server's address takes a TCP connection. A client
 * started just after its server in Kubernetes can run before kube-proxy routes the server's Service
 * (ENETUNREACH or ECONNREFUSED to the ClusterIP). Only the path is waited for: no TLS, no request, so every
 * request after it still counts. After `ms` the requests start anyway (and fail, and count).
 */
async function waitReachable(url: URL, ms: number): Promise<void> {
  if (!(ms > 0)) return;
  const started = Date.now();
  const port = Number(url.port || 443);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  for (let attempt = 1; ; attempt++) {
    const error = await new Promise<string | undefined>((resolve) => {
      const socket = net.connect({ host, port, timeout: 2000 });
      socket.once('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve('timed out');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    const waitedMs = Date.now() - started;
    if (!error || waitedMs >= ms) {
      console.log(
        JSON.stringify({ event: error ? 'unreachable' : 'reachable', attempts: attempt, waitedMs, error }),
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
