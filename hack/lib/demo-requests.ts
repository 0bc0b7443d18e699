// The demo's view of the example client's output (examples/client.ts prints one line per request:
// `<n> <status> <body>` or `<n> error <reason>`; examples/server.ts answers {peer, serial, peerSerial}).
// Pure: parses a line, formats it for people, and tallies which SVIDs each side presented.

export interface DemoRequest {
  n: number;
  ok: boolean;
  /** HTTP status, or 'error' when the request got no answer. */
  status: string;
  /** The caller's SPIFFE ID as the server verified it. */
  caller?: string;
  /** Serial of the certificate the caller presented on this connection (as the server saw it). */
  callerSerial?: string;
  /** Serial of the server's current SVID when it answered. */
  serverSerial?: string;
  /** The rest of the line for anything that is not a 200 with the expected body. */
  detail?: string;
}

const hex = /^[0-9a-f]+$/;

/** One line of the client's output, or undefined for lines that are not a request's. */
export function parseClientLine(line: string): DemoRequest | undefined {
  const m = /^(\d+) (\d{3}|error) ?(.*)$/.exec(line.trim());
  if (!m) return undefined;
  const [, n, status, rest = ''] = m;
  const req: DemoRequest = { n: Number(n), ok: false, status: status ?? '' };
  if (status !== '200') return { ...req, detail: rest };
  let body: unknown;
  try {
    body = JSON.parse(rest);
  } catch {
    return { ...req, detail: `unexpected body: ${rest.slice(0, 200)}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return { ...req, detail: `unexpected body: ${rest.slice(0, 200)}` };
  const b = body as { peer?: unknown; serial?: unknown; peerSerial?: unknown };
  const str = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : undefined);
  const caller = typeof b.peer === 'string' ? b.peer : undefined;
  const serverSerial = str(b.serial);
  const callerSerial = str(b.peerSerial);
  if (
    !caller?.startsWith('spiffe://') ||
    !serverSerial ||
    !hex.test(serverSerial) ||
    !callerSerial ||
    !hex.test(callerSerial)
  )
    return { ...req, detail: `unexpected body: ${rest.slice(0, 200)}` };
  return { ...req, ok: true, caller, callerSerial, serverSerial };
}

/** Counts requests and the distinct serials each side presented, in the order first seen. */
export class RequestTally {
  requests = 0;
  failed = 0;
  readonly callers = new Set<string>();
  readonly callerSerials: string[] = [];
  readonly serverSerials: string[] = [];

  /** Records one request; returns which sides presented a serial not seen before. */
  add(r: DemoRequest): { newCaller: boolean; newServer: boolean } {
    this.requests++;
    if (!r.ok) {
      this.failed++;
      return { newCaller: false, newServer: false };
    }
    if (r.caller) this.callers.add(r.caller);
    const fresh = (list: string[], s: string | undefined) => {
      if (!s || list.includes(s)) return false;
      list.push(s);
      return true;
    };
    return {
      newCaller: fresh(this.callerSerials, r.callerSerial),
      newServer: fresh(this.serverSerials, r.serverSerial),
    };
  }

  summary(): string {
    const rot = (n: number) =>
      `${n} SVID${n === 1 ? '' : 's'} (${Math.max(0, n - 1)} rotation${n === 2 ? '' : 's'})`;
    return (
      `${this.requests} requests, ${this.failed} failed; the client presented ${rot(this.callerSerials.length)}, ` +
      `the server ${rot(this.serverSerials.length)}`
    );
  }
}

const short = (serial: string | undefined) => (serial ? `${serial.slice(0, 16)}…` : '?');

/** The line the demo prints for a request. */
export function formatRequest(
  r: DemoRequest,
  serverId: string,
  fresh: { newCaller: boolean; newServer: boolean },
): string {
  if (!r.ok) return `request ${r.n}: FAILED ${r.status} ${r.detail ?? ''}`.trimEnd();
  return (
    `request ${r.n}: ${r.status}  caller ${r.caller} serial ${short(r.callerSerial)}${fresh.newCaller ? ' (new)' : '      '}` +
    `  →  server ${serverId} serial ${short(r.serverSerial)}${fresh.newServer ? ' (new)' : ''}`
  );
}
