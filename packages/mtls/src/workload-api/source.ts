// The SVID from the SPIFFE Workload API (a SPIRE agent or any conforming server), kept current: the
// FetchX509SVID stream stays open, every response is the full state, and a new SVID is used only after the
// same checks as a mounted Secret's (parses, key matches, chains to its trust domain's bundle, in date).
// A refused update keeps the previous SVID serving and is reported. Federated bundles are kept per trust
// domain.
import { createHash, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { SvidError, validateSvidParts, type Svid } from '../source/secret-volume-source.ts';
import type { X509Bundle, X509Source, X509SourceEvents } from '../source/x509-source.ts';
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

export interface WorkloadApiSourceEvents extends X509SourceEvents {
  /** A new SVID or new bundles were validated and are now in use. */
  update: [svid: Svid];
  /** The stream failed (it is retried unless it stopped) or an update was refused (the old SVID stays). */
  error: [err: Error];
}

/** A digest of certificates by their DER, to tell a changed response from a repeated one. */
const digestOf = (h: ReturnType<typeof createHash>, certs: readonly X509Certificate[]) => {
  for (const c of certs) h.update(c.raw).update('\0');
  return h.update('|');
};

const publicDer = (key: KeyObject) => createPublicKey(key).export({ type: 'spki', format: 'der' });

/**
 * The SVID of the SPIFFE Workload API, an X509Source: `current()` is the validated SVID (its key a
 * KeyObject), `bundleFor(td)` the roots of its own trust domain or of a federated one.
 */
export class WorkloadApiSource extends EventEmitter<WorkloadApiSourceEvents> implements X509Source {
  private readonly watch: X509SvidWatch;
  private readonly hint: string | undefined;
  private readonly logger: { warn(message: string): void } | null;
  private readonly now: () => Date;
  private svid: Svid | undefined;
  private digest = '';
  private bundlesByDomain = new Map<string, X509Bundle>();
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
  ready(timeoutMs = 30_000): Promise<void> {
    if (this.svid) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.svid) {
          done();
          resolve();
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

  /** The roots of a trust domain: the SVID's own or a federated one; undefined before the first SVID. */
  bundleFor(trustDomain: string): X509Bundle | undefined {
    return this.bundlesByDomain.get(trustDomain);
  }

  trustDomains(): string[] {
    return [...this.bundlesByDomain.keys()];
  }

  close(): void {
    this.closed = true;
    this.watch.close();
    this.wake();
  }

  private onResponse(msg: X509SvidResponseMessage): void {
    let svid: Svid;
    let bundles: Map<string, X509Bundle>;
    let digest: string;
    try {
      const ctx = parseX509Context(msg);
      const picked = pickSvid(ctx, this.hint);
      const td = trustDomainOfId(picked.spiffeId);
      const h = createHash('sha256').update(picked.spiffeId).update('\0');
      digestOf(h, picked.chain);
      // The key is hashed by its public half: the private key is never exported here.
      h.update(publicDer(picked.key));
      const sorted = [...ctx.bundles.keys()].sort();
      for (const d of sorted) digestOf(h.update(d).update('\0'), ctx.bundles.get(d) ?? []);
      digest = h.digest('hex');
      if (digest === this.digest && this.svid) return;
      const roots = ctx.bundles.get(td) ?? [];
      svid = validateSvidParts({ chain: picked.chain, key: picked.key, roots }, this.now()).svid;
      if (svid.spiffeId !== picked.spiffeId)
        throw new SvidError(
          `the agent labelled the SVID ${picked.spiffeId} but its certificate says ${svid.spiffeId}`,
        );
      if (this.svid && svid.trustDomain !== this.svid.trustDomain)
        throw new SvidError(
          `the new SVID ${svid.spiffeId} is of another trust domain than ${this.svid.spiffeId}: restart to change trust domains`,
        );
      // One bundle object per trust domain per change: peer checks cache chain results per bundle object.
      bundles = new Map(
        sorted.map((d) => {
          const roots = ctx.bundles.get(d) ?? [];
          const old = this.bundlesByDomain.get(d);
          const same =
            old !== undefined &&
            old.roots.length === roots.length &&
            old.roots.every((r, i) => r.raw.equals((roots[i] as X509Certificate).raw));
          return [d, same ? old : { trustDomain: d, roots }];
        }),
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
    const first = this.svid === undefined;
    this.lastError = undefined;
    this.digest = digest;
    this.bundlesByDomain = bundles;
    this.svid = svid;
    if (!first) this.emit('update', this.svid);
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
