// Example mTLS client: `npm run example:client -- (--svid-dir DIR | --pod-certificate-dir DIR) --url URL --server-id SPIFFE_ID [--count N]`
// Prints each response, and a JSON line each time its own SVID is replaced; exits 1 if any request failed.
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
  },
});
const opening = openFileSource(values);
if (!opening || !values.url || !values['server-id']) {
  console.error(
    `usage: client ${fileSourceUsage} --url URL --server-id SPIFFE_ID [--count N] [--interval-ms MS]`,
  );
  process.exit(2);
}

const source = await opening;
console.log(JSON.stringify({ event: 'started', serial: source.current().serialNumber }));
source.on('update', (svid) =>
  console.log(JSON.stringify({ event: 'rotated', serial: svid.serialNumber, notAfter: svid.notAfter })),
);
const dispatcher = new SvidDispatcher(source, { serverId: values['server-id'] });
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
