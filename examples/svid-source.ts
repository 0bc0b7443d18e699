// How the examples get their SVID: `--svid-dir DIR` (a mounted Secret) or `--workload-api [ADDR]` (the
// SPIFFE Workload API, e.g. a SPIRE agent; ADDR defaults to $SPIFFE_ENDPOINT_SOCKET).
import { WorkloadApiSource, SvidSource } from '@svid-operator/mtls';

export const sourceOptions = {
  'svid-dir': { type: 'string' },
  'workload-api': { type: 'string' },
  hint: { type: 'string' },
} as const;

export async function openSource(values: {
  'svid-dir'?: string;
  'workload-api'?: string;
  hint?: string;
}): Promise<SvidSource | WorkloadApiSource> {
  if (values['svid-dir']) return SvidSource.open(values['svid-dir']);
  if (values['workload-api'] !== undefined)
    return WorkloadApiSource.open({
      address: values['workload-api'] || undefined,
      hint: values.hint,
      timeoutMs: 30_000,
    });
  throw new Error(
    'say where the SVID comes from: --svid-dir DIR or --workload-api [unix:///path | tcp://IP:port]',
  );
}
