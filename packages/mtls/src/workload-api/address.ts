// The Workload API endpoint address (SPIFFE_ENDPOINT_SOCKET), as the SPIFFE Workload Endpoint spec defines
// it: `unix:` followed by an absolute path, or `tcp://` followed by an IP address and a port (no host
// names). No user info, query or fragment. https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Workload_Endpoint.md
import net from 'node:net';
import { WorkloadApiError } from './errors.ts';

export const ENDPOINT_SOCKET_ENV = 'SPIFFE_ENDPOINT_SOCKET';

export type EndpointAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

const bad = (addr: string, why: string) =>
  new WorkloadApiError(
    'address',
    `the Workload API address ${JSON.stringify(addr)} is invalid: ${why} (expected unix:///path/to/socket or tcp://IP:port)`,
  );

export function parseEndpointAddress(addr: string): EndpointAddress {
  if (addr.length > 4096) throw bad(addr.slice(0, 64) + '…', 'it is longer than 4096 characters');
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw bad(addr, 'it is not a URL');
  }
  if (url.username || url.password) throw bad(addr, 'it has user info');
  if (url.search || addr.includes('?')) throw bad(addr, 'it has a query');
  if (url.hash || addr.includes('#')) throw bad(addr, 'it has a fragment');
  if (url.protocol === 'unix:') {
    if (url.host) throw bad(addr, 'a unix address has no host; use unix:///absolute/path');
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      throw bad(addr, 'the socket path has an invalid percent-escape');
    }
    if (!path.startsWith('/') || path === '/') throw bad(addr, 'the socket path must be absolute');
    if (path.includes('\0')) throw bad(addr, 'the socket path contains a NUL byte');
    return { kind: 'unix', path };
  }
  if (url.protocol === 'tcp:') {
    if (url.pathname && url.pathname !== '/') throw bad(addr, 'a tcp address has no path');
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (net.isIP(host) === 0) throw bad(addr, 'the host must be an IP address, not a name');
    if (!url.port) throw bad(addr, 'the port is missing');
    return { kind: 'tcp', host, port: Number(url.port) };
  }
  throw bad(addr, `the scheme ${url.protocol} is neither unix: nor tcp:`);
}

/** The address from the environment, or a clear error when it is not set. */
export function endpointFromEnv(env: NodeJS.ProcessEnv = process.env): EndpointAddress {
  const addr = env[ENDPOINT_SOCKET_ENV];
  if (!addr)
    throw new WorkloadApiError(
      'address',
      `${ENDPOINT_SOCKET_ENV} is not set: set it to the SPIFFE Workload API socket (e.g. unix:///run/spire/sockets/agent.sock) or pass the address explicitly`,
    );
  return parseEndpointAddress(addr);
}
