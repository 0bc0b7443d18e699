// Example Workload API client: prints this workload's SVID from the SPIFFE Workload API (e.g. a SPIRE
// agent) and every rotation, as JSON lines.
//   SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent.sock npm run example:workload-api -- [--hint H] [--updates N]
import { parseArgs } from 'node:util';
import { WorkloadApiSource } from '@svid-operator/mtls';

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    hint: { type: 'string' },
    updates: { type: 'string', default: '0' },
    'timeout-ms': { type: 'string', default: '30000' },
  },
});

const describe = (svid: { spiffeId: string; serialNumber: string; notAfter: Date }) => ({
  spiffeId: svid.spiffeId,
  serial: svid.serialNumber,
  notAfter: svid.notAfter.toISOString(),
});

let source: WorkloadApiSource;
try {
  source = await WorkloadApiSource.open({
    address: values.address,
    hint: values.hint,
    timeoutMs: Number(values['timeout-ms']),
    logger: null,
  });
} catch (err) {
  console.error(`workload-api-client: ${(err as Error).message}`);
  process.exit(1);
}
console.log(
  JSON.stringify({
    event: 'svid',
    ...describe(source.current()),
    trustDomains: source.trustDomains(),
  }),
);
let left = Math.max(0, Number(values.updates) || 0);
if (left === 0) {
  source.close();
} else {
  source.on('error', (err) => console.log(JSON.stringify({ event: 'error', message: err.message })));
  source.on('update', (svid) => {
    console.log(JSON.stringify({ event: 'rotated', ...describe(svid) }));
    if (--left === 0) source.close();
  });
}
