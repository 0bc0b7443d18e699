// The lines `npm run demo` prints, read back by its tests (process mode and --node).

/** An "issued" or "renewed" line of the operator's issuance printout. */
export interface DemoIssuance {
  sa: string;
  serial: string;
  spiffeId: string;
}

/** A request line: the caller as the server verified it, and the server's certificate. */
export interface DemoRequest {
  status: string;
  caller: string;
  callerSerial: string;
  server: string;
  serverSerial: string;
}

export function demoIssuances(stdout: string): DemoIssuance[] {
  return [...stdout.matchAll(/\] (server|client) +(?:issued|renewed) +serial ([0-9a-f]{16})… +(\S+)/g)].map(
    ([, sa = '', serial = '', spiffeId = '']) => ({ sa, serial, spiffeId }),
  );
}

export function demoRequests(stdout: string): DemoRequest[] {
  return [
    ...stdout.matchAll(
      /request (\d+): (\S+) +caller (\S+) serial ([0-9a-f]{16})…(?: \(new\))? +→ +server (\S+) serial ([0-9a-f]{16})…/g,
    ),
  ].map(([, , status = '', caller = '', callerSerial = '', server = '', serverSerial = '']) => ({
    status,
    caller,
    callerSerial,
    server,
    serverSerial,
  }));
}

export function demoFailedRequests(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /request \d+: FAILED/.test(l));
}
