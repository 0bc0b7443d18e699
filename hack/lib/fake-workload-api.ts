// A Workload API server for the client's protocol tests: node:http2 on a unix socket in a temporary
// directory, speaking gRPC by hand so tests can make it misbehave (bad status, broken frames, missing
// header checks). Used by the protocol tests and the bench; interop with a real agent is tested against
// SPIRE (test/interop/spire.test.ts).
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { encodeFrame } from '../../packages/mtls/src/workload-api/grpc-frame.ts';
import {
  encodeX509SvidResponse,
  FETCH_X509_SVID_PATH,
  type X509SvidResponseMessage,
} from '../../packages/mtls/src/workload-api/messages.ts';

export interface Call {
  headers: http2.IncomingHttpHeaders;
  stream: http2.ServerHttp2Stream;
}

/** What the server does with a new call; the default sends `state` if set and keeps the stream open. */
export type Behaviour = (call: Call, api: FakeWorkloadApi) => void;

export class FakeWorkloadApi {
  readonly dir: string;
  readonly socket: string;
  address: string;
  readonly calls: Call[] = [];
  /** Behaviours for the next calls, in order; when empty, `keepOpen`. */
  readonly script: Behaviour[] = [];
  state: X509SvidResponseMessage | undefined;
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  private constructor(dir: string) {
    this.dir = dir;
    this.socket = path.join(dir, 'api.sock');
    this.address = `unix://${this.socket}`;
    this.server = http2.createServer();
    this.server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
    });
    this.server.on('stream', (stream, headers) => {
      const call = { stream, headers };
      stream.on('error', () => undefined);
      this.calls.push(call);
      const behaviour = this.script.shift() ?? FakeWorkloadApi.keepOpen;
      behaviour(call, this);
    });
  }

  /** Listens on a unix socket, or on 127.0.0.1 with `tcp` (then `address` is tcp://127.0.0.1:port). */
  static async start(opts: { tcp?: boolean; listen?: boolean } = {}): Promise<FakeWorkloadApi> {
    const api = new FakeWorkloadApi(await mkdtemp(path.join(os.tmpdir(), 'wlapi-')));
    if (opts.tcp) {
      await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', resolve));
      api.address = `tcp://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
    } else if (opts.listen !== false) await api.listen();
    return api;
  }

  /** Starts listening on the unix socket (for tests that start the client first). */
  listen(): Promise<void> {
    return new Promise<void>((resolve) => this.server.listen(this.socket, resolve));
  }

  /** Checks path and the security header like SPIRE does, answers with the current state and stays open. */
  static keepOpen: Behaviour = (call, api) => {
    if (call.headers[':path'] !== FETCH_X509_SVID_PATH)
      return FakeWorkloadApi.status(12, 'unknown method')(call, api);
    if (call.headers['workload.spiffe.io'] !== 'true')
      return FakeWorkloadApi.status(3, 'security header missing from request')(call, api);
    call.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    call.stream.on('wantTrailers', () => call.stream.sendTrailers({ 'grpc-status': '0' }));
    if (api.state) call.stream.write(encodeFrame(encodeX509SvidResponse(api.state)));
  };

  /** A trailers-only response with this status. */
  static status(code: number, message: string): Behaviour {
    return (call) => {
      call.stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': String(code),
          'grpc-message': encodeURIComponent(message),
        },
        { endStream: true },
      );
    };
  }

  /** Sends raw bytes on a 200 gRPC response (for broken framing). */
  static raw(bytes: Uint8Array): Behaviour {
    return (call) => {
      call.stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      call.stream.write(bytes);
    };
  }

  /** The open calls (streams still writable). */
  open(): Call[] {
    return this.calls.filter((c) => !c.stream.closed && !c.stream.destroyed);
  }

  /** Sends a new full state on every open stream. */
  push(state: X509SvidResponseMessage): void {
    this.state = state;
    for (const c of this.open()) c.stream.write(encodeFrame(encodeX509SvidResponse(state)));
  }

  /** Sends raw bytes (already framed) on every open stream. */
  pushRaw(bytes: Uint8Array): void {
    for (const c of this.open()) c.stream.write(bytes);
  }

  /** Ends every open stream with this status in its trailers. */
  endAll(code: number, message: string): void {
    for (const c of this.open()) {
      c.stream.removeAllListeners('wantTrailers');
      c.stream.once('wantTrailers', () =>
        c.stream.sendTrailers({ 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) }),
      );
      c.stream.end();
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }
}
