// Example gRPC server with mTLS from an SVID source, rotating without a restart:
//   npm run example:grpc-server -- (--svid-dir DIR | --workload-api [ADDR]) --port PORT --allow SPIFFE_ID...
// Serves the Echo service of examples/grpc-echo.ts; callers not in --allow get PERMISSION_DENIED.
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { authorizeId } from '@svid-operator/mtls';
import { grpcServerCredentials } from '@svid-operator/mtls/grpc';
import { echoHandlers, echoService } from './grpc-echo.ts';
import { openSource, sourceOptions } from './svid-source.ts';

const { values } = parseArgs({
  options: {
    ...sourceOptions,
    port: { type: 'string', default: '8443' },
    host: { type: 'string', default: '0.0.0.0' },
    allow: { type: 'string', multiple: true, default: [] },
  },
});
const allow = values.allow ?? [];
if (allow.length === 0) {
  console.error(
    'usage: grpc-server (--svid-dir DIR | --workload-api [ADDR]) --port PORT --allow SPIFFE_ID...',
  );
  process.exit(2);
}

const source = await openSource(values);
source.on('update', (svid) => console.log(JSON.stringify({ event: 'rotated', serial: svid.serialNumber })));
source.on('error', (err) => console.log(JSON.stringify({ event: 'error', message: err.message })));
const server = new grpc.Server();
server.addService(echoService, echoHandlers(source));
server.bindAsync(
  `${values.host}:${values.port}`,
  grpcServerCredentials(source, { authorize: authorizeId(...allow) }),
  (err, port) => {
    if (err) {
      console.error(err.message);
      process.exit(1);
    }
    console.log(JSON.stringify({ event: 'listening', port, spiffeId: source.current().spiffeId }));
  },
);
const stop = () => server.tryShutdown(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
