// Example gRPC client with mTLS from an SVID source, accepting the server only by its SPIFFE ID:
//   npm run example:grpc-client -- (--svid-dir DIR | --workload-api [ADDR]) --address HOST:PORT \
//     --server-id SPIFFE_ID [--count N] [--interval-ms MS]
// Prints one JSON line per call: the answer, or the gRPC status of a failed call.
import { parseArgs } from 'node:util';
import { grpcChannelCredentials } from '@svid-operator/mtls/grpc';
import { newEchoClient, unary } from './grpc-echo.ts';
import { openSource, sourceOptions } from './svid-source.ts';

const { values } = parseArgs({
  options: {
    ...sourceOptions,
    address: { type: 'string' },
    'server-id': { type: 'string' },
    count: { type: 'string', default: '1' },
    'interval-ms': { type: 'string', default: '1000' },
  },
});
if (!values.address || !values['server-id']) {
  console.error(
    'usage: grpc-client (--svid-dir DIR | --workload-api [ADDR]) --address HOST:PORT --server-id SPIFFE_ID',
  );
  process.exit(2);
}

const source = await openSource(values);
const client = newEchoClient(
  values.address,
  grpcChannelCredentials(source, { serverId: values['server-id'] }),
);
let failed = 0;
const count = Math.max(1, Math.min(1_000_000, Number(values.count) || 1));
for (let n = 0; n < count; n++) {
  try {
    console.log(JSON.stringify(await unary(client, n)));
  } catch (err) {
    failed++;
    const e = err as { code?: number; details?: string; message: string };
    console.log(JSON.stringify({ n, code: e.code, error: e.details ?? e.message }));
  }
  if (n + 1 < count) await new Promise((r) => setTimeout(r, Number(values['interval-ms'])));
}
client.close();
source.close();
process.exit(failed ? 1 : 0);
