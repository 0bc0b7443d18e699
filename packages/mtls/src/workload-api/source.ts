// The SVID from the SPIFFE Workload API (a SPIRE agent or any conforming server), kept current: the
// FetchX509SVID stream stays open, every response is the full state, and a new SVID is used only after the
// same checks as a mounted Secret's (parses, key matches, chains to its trust domain's bundle, in date).
// A refused update keeps the previous SVID serving and is reported. Federated bundles are kept per trust
// domain.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { spiffeIdOf } from '../identity.ts';
import { SvidError, validateSvid, type Svid } from '../source.ts';
import { X509SvidWatch, type WorkloadApiClientOptions } from './client.ts';
import { WorkloadApiError } from './errors.ts';
import type { X509SvidResponseMessage } from './messages.ts';
import { parseX509Context, pickSvid, trustDomainOfId } from './x509-context.ts';

export interface WorkloadApiSourceOptions extends WorkloadApiClientOptions {
  /** Use the SVID with this hint instead of the first (the agent's default). */
  hint?: string;
  /** Where refusals and stream failures are logged besides the events; default console. null for none. */
  logger?: { warn(message: string): void } | null;
  /** The clock used to check validity dates (tests inject one). */
  now?: () => Date;
}

export interface WorkloadApiSourceEvents {
  /** A new SVID (or a new bundle for its trust domain) was validated and is now in use. */
  update: [svid: Svid];
  /** The stream failed (it is retried unless it stopped) or an update was refused (the old SVID stays). */
  error: [err: Error];
}

const pemOf = (certs: { toString(): string }[]) => certs.map((c) => c.toString().trim() + '\n').join('');

export class WorkloadApiSource extends EventEmitter<WorkloadApiSourceEvents> {
  private readonly watch: X509SvidWatch;
  private readonly hint: string | undefined;
  private readonly logger: { warn(message: string): void } | null;
  private readonly now: () => Date;
  private svid: Svid | undefined;
  private digest = '';
  private bundlesByDomain = new Map<string, string>();
  private lastError: Error | undefined;
  private closed = false;
  private readonly waiters = new Set<() => void>();

  constructor(opts: WorkloadApiSourceOptions = {}) {
    super();
    this.watch = new X509SvidWatch(opts);
    this.hint = opts.hint;
    this.logger = opts.logger === undefined ? console : opts.logger;
    this.now = opts.now ?? (() => new Date());
    this.watch.on('response', (msg) => this.onResponse(msg));
    this.watch.on('error', (err, info) => {
      const suffix =
        info.retryInMs !== undefined
          ? `; retrying in ${info.retryInMs} ms`
          : info.streamOpen
            ? ''
            : '; stopped';
      this.report(new SvidError(`${err.message}${suffix}`), err);
      if (!info.streamOpen && info.retryInMs === undefined) this.wake();
    });
  }

  /** Connects and waits for the first valid SVID (see `ready`). */
  static async open(
    opts: WorkloadApiSourceOptions & { timeoutMs?: number } = {},
  ): Promise<WorkloadApiSource> {
    const source = new WorkloadApiSource(opts).start();
    try {
      await source.ready(opts.timeoutMs ?? 30_000);
    } catch (err) {
      source.close();
      throw err;
    }
    return source;
  }

  start(): this {
    this.watch.start();
    return this;
  }

  /** The Workload API address in use. */
  get address(): string {
    return this.watch.describe();
  }

  /**
   * Resolves with the SVID once one valid SVID has arrived; rejects with an SvidError saying what was last
   * wrong when none arrived within `timeoutMs`, or at once when the agent refused the request for good.
   */
  ready(timeoutMs: number): Promise<Svid> {
    if (this.svid) return Promise.resolve(this.svid);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.svid) {
          done();
          resolve(this.svid);
        } else if (this.watch.hasStopped || this.closed) {
          done();
          reject(
            this.notReady(
              `the Workload API stream at ${this.address} ${this.closed ? 'was closed' : 'stopped'}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          this.notReady(
            `no valid SVID arrived from the Workload API at ${this.address} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  private notReady(what: string): SvidError {
    const last = this.lastError
      ? `; last error: ${this.lastError.message}`
      : "; the agent sent nothing (is this workload registered, and is SPIFFE_ENDPOINT_SOCKET the agent's socket?)";
    return new SvidError(`${what}${last}`);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** The SVID in use; throws before the first one arrived (await `ready` first). */
  current(): Svid {
    if (!this.svid)
      throw new SvidError(
        `no SVID from the Workload API at ${this.address} yet: await source.ready(timeoutMs) first`,
      );
    return this.svid;
  }

  get spiffeId(): string {
    return this.current().spiffeId;
  }

  /** Trust bundles (PEM) by trust domain name: the SVID's own and the federated ones. */
  bundles(): ReadonlyMap<string, string> {
    return this.bundlesByDomain;
  }

  close(): void {
    this.closed = true;
    this.watch.close();
    this.wake();
  }

  private onResponse(msg: X509SvidResponseMessage): void {
    let svid: Omit<Svid, 'generation'>;
    let bundles: Map<string, string>;
    let digest: string;
    try {
      const ctx = parseX509Context(msg);
      const picked = pickSvid(ctx, this.hint);
      const td = trustDomainOfId(picked.spiffeId);
      const inCert = spiffeIdOf(picked.chain[0]);
      if (inCert !== picked.spiffeId)
        throw new SvidError(
          `the agent labelled the SVID ${picked.spiffeId} but its certificate says ${inCert ?? 'no single SPIFFE ID'}`,
        );
      bundles = new Map([...ctx.bundles].map(([d, certs]) => [d, pemOf(certs)]));
      const keyPem = picked.key.export({ format: 'pem', type: 'pkcs8' }).toString();
      const files = { certChainPem: pemOf(picked.chain), keyPem, bundlePem: bundles.get(td) ?? '' };
      digest = createHash('sha256')
        .update(files.certChainPem)
        .update('\0')
        .update(keyPem)
        .update('\0')
        .update(files.bundlePem)
        .digest('hex');
      if (digest === this.digest && this.svid) {
        this.bundlesByDomain = bundles;
        return;
      }
      svid = validateSvid(files, this.now());
      if (svid.spiffeId !== picked.spiffeId)
        throw new SvidError(
          `the agent labelled the SVID ${picked.spiffeId} but its certificate says ${svid.spiffeId}`,
        );
    } catch (err) {
      const e = err as Error;
      const why = e instanceof WorkloadApiError || e instanceof SvidError ? e.message : String(e);
      this.report(
        new SvidError(
          `${this.svid ? `keeping SVID ${this.svid.serialNumber}: ` : ''}the Workload API sent an SVID that was refused: ${why}`,
        ),
      );
      return;
    }
    this.lastError = undefined;
    this.digest = digest;
    this.bundlesByDomain = bundles;
    this.svid = { ...svid, generation: (this.svid?.generation ?? 0) + 1 };
    if (this.svid.generation > 1) this.emit('update', this.svid);
    this.wake();
  }

  private report(err: SvidError, cause?: Error): void {
    if (cause) (err as { cause?: unknown }).cause = cause;
    this.lastError = err;
    if (this.closed) return;
    this.logger?.warn(`svid: ${err.message}`);
    // EventEmitter throws an 'error' nobody listens to; the log line above already reported it.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
