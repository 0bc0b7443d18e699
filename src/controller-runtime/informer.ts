// A list+watch cache, owning the whole cycle (client-node's informer stops on errors):
//  - list in pages (`limit`/`continue`, like client-go's reflector), each page folded into the cache as it
//    arrives, so a relist of 10,000 objects never holds a second full copy next to the cache;
//  - watch from the list's resourceVersion with bookmarks, for as long as the API server keeps the watch
//    (server-side `timeoutSeconds`, 5-10 minutes like client-go); a watch the server closes is re-opened at
//    once from the last resourceVersion seen, a failed one after a backoff;
//  - 410 Gone (resourceVersion too old) relists and emits the difference, so no change is lost;
//  - a handler that throws or rejects is logged and the other handlers still run.
//
// Liveness (`alive`) is "the watch is alive": a watch stream is open, or the API server answered within
// the window. A quiet cluster sends nothing on an open watch for minutes, which is not silence.
import type { KubeClient } from '../kube/client.ts';
import { KubeApiError, statusOf } from '../kube/errors.ts';
import type { WatchEnd, WatchOpener } from '../kube/watch-stream.ts';

export interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  /** The token for the next page; empty or absent on the last one. */
  continue?: string;
}

export interface Source<T> {
  /** One page of the list: at most `limit` items, from `continue` (absent for the first page). */
  list(page: { limit: number; continue?: string }): Promise<ListPage<T>>;
  /** API path to watch, e.g. /api/v1/secrets or /apis/g/v/namespaces/ns/plural. */
  watchPath: string;
  /** labelSelector / fieldSelector, the same as the list's. */
  query: Record<string, string>;
  /** Trims each object before it is cached (the cache holds every object for the process's life). */
  transform?: (obj: T) => T;
}

export type InformerEvent = 'upsert' | 'delete';

export interface InformerLogger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export interface InformerOptions {
  /** Milliseconds on a monotonic clock; liveness is judged with it. Default performance.now. */
  clock?: () => number;
  /** Waits between retries. Default: a timer, cut short by the signal. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Default: watch requests through the client. */
  openWatch?: WatchOpener;
  /** Items per list page (client-go's default is 500). */
  pageSize?: number;
  /** Server-side lifetime of each watch; default 5-10 minutes at random, as client-go does. */
  watchTimeoutSeconds?: () => number;
}

export const keyOf = (o: Meta): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** Beyond the server-side watch timeout, how long a silent connection is given before it counts as dead. */
const DEAD_CONNECTION_MARGIN_MS = 30_000;
export const DEFAULT_PAGE_SIZE = 500;

const timerSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

const backoffMs = (failures: number) => Math.min(30_000, 500 * 2 ** Math.min(failures, 6));

/**
 * Watches refused in a row with 429 (the API server asking to come back later: API Priority and Fairness, or
 * a watch cache still initializing, as right after a CRD is created or the API server starts) that are only
 * logged at info; from the next one on, a refusal that persists is a warning.
 */
export const TRANSIENT_REFUSALS = 3;

type Handler<T> = (event: InformerEvent, obj: T) => void | Promise<void>;

export class Informer<T extends Meta> {
  readonly cache = new Map<string, T>();
  private readonly source: Source<T>;
  private readonly name: string;
  private readonly log: InformerLogger;
  private readonly handlers: Handler<T>[] = [];
  private readonly stopper = new AbortController();
  private readonly clock: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly openWatch: WatchOpener;
  private readonly pageSize: number;
  private readonly watchTimeoutSeconds: () => number;
  private resourceVersion = '';
  private syncedResolve!: () => void;
  /** Resolves after the first complete list. */
  readonly synced = new Promise<void>((resolve) => (this.syncedResolve = resolve));
  /** When the API server last answered (a list page, a watch opened, an event, a clean close). */
  private lastContact: number;
  /** A watch stream is open right now. */
  private watching = false;
  relists = 0;
  /** Watches refused in a row (reset when one opens). */
  private refusals = 0;
  /** The Retry-After of the last refusal, waited for at least before the next watch. */
  private retryAfterMs = 0;
  /** Watches the API server closed at their timeout (each one re-opened at once). */
  watchesClosed = 0;

  constructor(
    kc: KubeClient,
    name: string,
    source: Source<T>,
    log: InformerLogger,
    options: InformerOptions = {},
  ) {
    this.name = name;
    this.source = source;
    this.log = log;
    this.clock = options.clock ?? (() => performance.now());
    this.sleep = options.sleep ?? timerSleep;
    this.openWatch = options.openWatch ?? ((request) => kc.watch(request));
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? (() => 300 + Math.floor(Math.random() * 300));
    this.lastContact = this.clock();
  }

  on(handler: Handler<T>): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  start(): void {
    this.lastContact = this.clock();
    void this.run();
  }

  stop(): void {
    this.stopper.abort();
  }

  /** Whether the watch is alive: a stream is open, or the API server answered within `windowMs`. */
  alive(windowMs: number): boolean {
    return this.watching || this.clock() - this.lastContact < windowMs;
  }

  private contact(): void {
    this.lastContact = this.clock();
  }

  private emit(event: InformerEvent, obj: T): void {
    for (const h of this.handlers) {
      try {
        const result = h(event, obj);
        if (result instanceof Promise) result.catch((err: unknown) => this.handlerFailed(event, obj, err));
      } catch (err) {
        this.handlerFailed(event, obj, err);
      }
    }
  }

  private handlerFailed(event: InformerEvent, obj: T, err: unknown): void {
    this.log.error(`${this.name}: handling a watch event failed`, {
      event,
      object: keyOf(obj),
      error: errorText(err),
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopper.signal.aborted) {
      try {
        await this.relist();
        failures = 0;
        for (;;) {
          if (this.stopper.signal.aborted) return;
          const outcome = await this.watchOnce();
          if (outcome === 'gone') break;
          if (outcome === 'stopped') return;
          if (outcome === 'failed' || outcome === 'failed-after-open') {
            failures = outcome === 'failed-after-open' ? 1 : failures + 1;
            await this.sleep(Math.max(backoffMs(failures), this.retryAfterMs), this.stopper.signal);
            this.retryAfterMs = 0;
          } else failures = 0;
        }
      } catch (err) {
        failures++;
        const delay = backoffMs(failures);
        this.log.warn(`${this.name}: list failed, retrying in ${delay} ms`, { error: errorText(err) });
        await this.sleep(delay, this.stopper.signal);
      }
    }
  }

  /** Lists page by page, folding each page into the cache, then removes what no page held. */
  private async relist(): Promise<void> {
    const seen = new Set<string>();
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.source.list({ limit: this.pageSize, continue: token });
      if (this.stopper.signal.aborted) return;
      this.contact();
      for (const listed of page.items) {
        const item = this.source.transform?.(listed) ?? listed;
        const key = keyOf(item);
        seen.add(key);
        const old = this.cache.get(key);
        if (old?.metadata?.resourceVersion === item.metadata?.resourceVersion) continue;
        this.cache.set(key, item);
        this.emit('upsert', item);
      }
      // Every page of one list is served from the same snapshot; the first page's version is the list's.
      resourceVersion ||= page.resourceVersion;
      token = page.continue || undefined;
    } while (token);
    this.relists++;
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    this.resourceVersion = resourceVersion;
    this.syncedResolve();
  }

  /** One watch request; resolves how it ended. */
  private async watchOnce(): Promise<'ended' | 'gone' | 'failed' | 'failed-after-open' | 'stopped'> {
    const own = new AbortController();
    let gone = false;
    let opened = false;
    const timeoutSeconds = this.watchTimeoutSeconds();
    let end: WatchEnd;
    try {
      end = await this.openWatch({
        path: this.source.watchPath,
        query: {
          ...this.source.query,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        },
        signal: AbortSignal.any([this.stopper.signal, own.signal]),
        deadConnectionMs: timeoutSeconds * 1000 + DEAD_CONNECTION_MARGIN_MS,
        onOpen: () => {
          opened = true;
          this.refusals = 0;
          this.watching = true;
          this.contact();
        },
        onEvent: (type, object) => {
          this.contact();
          const obj = object as T & { code?: number };
          if (type === 'ERROR') {
            if (obj.code === 410) gone = true;
            else
              this.log.warn(`${this.name}: watch error event`, { error: JSON.stringify(obj).slice(0, 300) });
            own.abort();
            return;
          }
          const rv = obj.metadata?.resourceVersion;
          if (rv) this.resourceVersion = rv;
          if (type === 'BOOKMARK') return;
          const key = keyOf(obj);
          if (type === 'DELETED') {
            this.cache.delete(key);
            this.emit('delete', obj);
          } else {
            const item = this.source.transform?.(obj) ?? obj;
            this.cache.set(key, item);
            this.emit('upsert', item);
          }
        },
      });
    } finally {
      this.watching = false;
    }
    if (this.stopper.signal.aborted) return 'stopped';
    if (gone) return 'gone';
    switch (end.kind) {
      case 'closed':
        this.contact();
        this.watchesClosed++;
        this.log.debug(`${this.name}: watch closed by the API server; re-opening`, { timeoutSeconds });
        return 'ended';
      case 'status': {
        if (end.code === 410) return 'gone';
        this.refusals++;
        const status = statusOf(end.body);
        this.retryAfterMs = (status?.retryAfterSeconds ?? 0) * 1000;
        const meta = { status: end.code, refusalsInARow: this.refusals, error: end.body.slice(0, 300) };
        if (end.code === 429 && this.refusals <= TRANSIENT_REFUSALS)
          this.log.info(`${this.name}: watch refused for now (429), retrying`, meta);
        else this.log.warn(`${this.name}: watch refused`, meta);
        return 'failed';
      }
      case 'error':
        if (own.signal.aborted) return 'failed-after-open';
        this.log.debug(`${this.name}: watch failed`, { error: end.error.message });
        return opened ? 'failed-after-open' : 'failed';
    }
  }
}

export function errorText(err: unknown): string {
  if (err instanceof KubeApiError) return `HTTP ${err.code}: ${err.body.slice(0, 300)}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
