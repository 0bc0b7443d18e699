// A FetchX509SVID stream to the SPIFFE Workload API, kept open for as long as the watch runs: gRPC over
// node:http2 with no other dependency. Every response is the full current state and is handed on as it
// is; when the stream ends it is re-opened with backoff, unless the agent said the request itself is wrong
// (INVALID_ARGUMENT, UNIMPLEMENTED), which is reported and ends the watch.
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { endpointFromEnv, parseEndpointAddress, type EndpointAddress } from './address.ts';
import { backoffDelay, DEFAULT_BACKOFF, shouldRetry, type BackoffPolicy } from './backoff.ts';
import { WorkloadApiError } from './errors.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, encodeFrame, FrameDecoder } from './grpc-frame.ts';
import {
  decodeX509SvidResponse,
  FETCH_X509_SVID_PATH,
  X509_SVID_REQUEST,
  type X509SvidResponseMessage,
} from './messages.ts';
import { GrpcCode, grpcCodeName, statusFromTrailers } from './status.ts';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface WorkloadApiClientOptions {
  /** `unix:///path` or `tcp://IP:port`; default: the SPIFFE_ENDPOINT_SOCKET environment variable. */
  address?: string | EndpointAddress;
  /** Largest accepted response message; default 4 MiB (gRPC's default). */
  maxMessageBytes?: number;
  /** Re-open delays; default 1 s doubling up to 30 s. */
  backoff?: Partial<BackoffPolicy>;
  /** Timers for the backoff (tests inject a fake clock); default the global ones. */
  timers?: Timers;
}

export interface X509WatchEvents {
  /** A decoded response: the full current set of SVIDs and bundles. */
  response: [message: X509SvidResponseMessage];
  /**
   * The stream failed or a response could not be decoded. `retryInMs` is when the stream is re-opened;
   * undefined when the watch stopped for good (INVALID_ARGUMENT, UNIMPLEMENTED) or the failure was a
   * single undecodable message on a stream that stays open (then `streamOpen` is true).
   */
  error: [err: WorkloadApiError, info: { retryInMs?: number; streamOpen: boolean }];
}

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Watches FetchX509SVID. Starts with `start()`; `close()` ends the stream and every retry. */
export class X509SvidWatch extends EventEmitter<X509WatchEvents> {
  readonly address: EndpointAddress;
  private readonly maxMessageBytes: number;
  private readonly policy: BackoffPolicy;
  private readonly timers: Timers;
  private session: http2.ClientHttp2Session | undefined;
  private retryTimer: unknown;
  private attempt = 0;
  private closed = false;
  private stopped = false;

  constructor(opts: WorkloadApiClientOptions = {}) {
    super();
    this.address =
      opts.address === undefined
        ? endpointFromEnv()
        : typeof opts.address === 'string'
          ? parseEndpointAddress(opts.address)
          : opts.address;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.policy = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.timers = opts.timers ?? defaultTimers;
  }

  start(): this {
    if (!this.session && !this.closed) this.open();
    return this;
  }

  close(): void {
    this.closed = true;
    this.timers.clearTimeout(this.retryTimer);
    this.session?.destroy();
    this.session = undefined;
  }

  private connect(): net.Socket {
    const a = this.address;
    return a.kind === 'unix' ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port });
  }

  private open(): void {
    const decoder = new FrameDecoder(this.maxMessageBytes);
    let finished = false;
    let gotHeaders = false;
    let status: { code: number; message: string } | undefined;
    let failure: WorkloadApiError | undefined;

    // The authority is what grpc-go's and grpc-js's clients send for a unix socket; the agent ignores it.
    const session = http2.connect('http://localhost', { createConnection: () => this.connect() });
    this.session = session;
    session.on('error', (err) => {
      failure ??= new WorkloadApiError(
        'transport',
        `cannot reach the Workload API at ${this.describe()}: ${err.message}`,
      );
    });
    const stream = session.request({
      ':method': 'POST',
      ':path': FETCH_X509_SVID_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
      'user-agent': 'svid-operator-mtls',
      // Mandatory: the Workload Endpoint spec has servers refuse requests without it (SSRF protection).
      'workload.spiffe.io': 'true',
    });
    stream.end(encodeFrame(X509_SVID_REQUEST));

    const finish = () => {
      if (finished) return;
      finished = true;
      if (this.session === session) this.session = undefined;
      session.destroy();
      if (this.closed) return;
      let err: WorkloadApiError;
      if (failure) err = failure;
      else if (status && status.code !== GrpcCode.OK)
        err = new WorkloadApiError(
          'status',
          `the Workload API at ${this.describe()} answered ${grpcCodeName(status.code)}: ${status.message || '(no message)'}${hint(status.code)}`,
          status.code,
        );
      else
        err = new WorkloadApiError(
          'transport',
          `the Workload API stream at ${this.describe()} ended${status ? '' : ' without a status'}`,
        );
      const code = err.reason === 'status' ? err.grpcCode : undefined;
      if (!shouldRetry(code)) {
        this.stopped = true;
        this.emit('error', err, { streamOpen: false });
        return;
      }
      const retryInMs = backoffDelay(this.policy, this.attempt++);
      this.retryTimer = this.timers.setTimeout(() => {
        if (!this.closed) this.open();
      }, retryInMs);
      this.emit('error', err, { retryInMs, streamOpen: false });
    };

    stream.on('response', (headers) => {
      gotHeaders = true;
      const httpStatus = headers[':status'];
      const type = String(headers['content-type'] ?? '');
      if (headers['grpc-status'] !== undefined) {
        // A trailers-only response: the status is in the headers.
        status = statusFromTrailers(headers);
      } else if (httpStatus !== 200 || !type.startsWith('application/grpc')) {
        failure = new WorkloadApiError(
          'transport',
          `${this.describe()} is not a gRPC server (HTTP ${httpStatus}, content-type ${type || 'none'})`,
        );
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    stream.on('data', (chunk: Buffer) => {
      if (finished || failure) return;
      let messages: Uint8Array[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        // The framing is broken: nothing after this point can be trusted, so the stream is re-opened.
        failure = err as WorkloadApiError;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      for (const m of messages) {
        let msg: X509SvidResponseMessage;
        try {
          msg = decodeX509SvidResponse(m);
        } catch (err) {
          // One undecodable message; the next one is a full state again, so the stream stays open.
          this.emit('error', err as WorkloadApiError, { streamOpen: true });
          continue;
        }
        this.attempt = 0;
        this.emit('response', msg);
      }
    });
    stream.on('trailers', (trailers) => {
      status = statusFromTrailers(trailers);
    });
    stream.on('error', (err) => {
      failure ??= new WorkloadApiError(
        'transport',
        gotHeaders
          ? `the Workload API stream at ${this.describe()} failed: ${err.message}`
          : `cannot reach the Workload API at ${this.describe()}: ${err.message}`,
      );
    });
    stream.on('close', () => {
      if (!failure && !status && decoder.pending)
        failure = new WorkloadApiError(
          'malformed',
          'the Workload API stream ended in the middle of a message',
        );
      finish();
    });
  }

  /** True after the watch stopped for good (INVALID_ARGUMENT, UNIMPLEMENTED). */
  get hasStopped(): boolean {
    return this.stopped;
  }

  describe(): string {
    const a = this.address;
    return a.kind === 'unix'
      ? `unix://${a.path}`
      : `tcp://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  }
}

function hint(code: number): string {
  switch (code) {
    case GrpcCode.PERMISSION_DENIED:
      return ' (is there a registration entry whose selectors match this process? SPIRE answers this until there is)';
    case GrpcCode.INVALID_ARGUMENT:
      return ' (the request was refused as malformed; not retrying)';
    case GrpcCode.UNIMPLEMENTED:
      return ' (the server does not implement the SPIFFE Workload API; check the address; not retrying)';
    default:
      return '';
  }
}
