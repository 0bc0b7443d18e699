// A list+watch cache. client-node ships an informer, but its error handling is the caller's problem (it
// stops on errors), so this loop owns the whole cycle:
//  - list, then watch from the list's resourceVersion with bookmarks;
//  - a watch that ends (server timeout, client-node's 30 s inactivity abort, a dropped connection, an API
//    server restart) is re-opened from the last resourceVersion seen, after a backoff if it failed;
//  - 410 Gone (resourceVersion too old) relists and emits the difference, so no change is lost.
import * as k8s from '@kubernetes/client-node';

export interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface Source<T> {
  /** One page of the list with its resourceVersion. */
  list(): Promise<{ items: T[]; resourceVersion: string }>;
  /** API path to watch, e.g. /api/v1/secrets or /apis/g/v/namespaces/ns/plural. */
  watchPath: string;
  /** labelSelector / fieldSelector, the same as the list's. */
  query: Record<string, string>;
  /** Trims each object before it is cached (the cache holds every object for the process's life). */
  transform?: (obj: T) => T;
}

export type InformerEvent = 'upsert' | 'delete';

export interface InformerLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export const keyOf = (o: Meta): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

export class Informer<T extends Meta> {
  readonly cache = new Map<string, T>();
  private readonly kc: k8s.KubeConfig;
  private readonly source: Source<T>;
  private readonly name: string;
  private readonly log: InformerLogger;
  private readonly handlers: ((event: InformerEvent, obj: T) => void)[] = [];
  private readonly stopper = new AbortController();
  private current?: AbortController;
  private resourceVersion = '';
  private syncedResolve!: () => void;
  /** Resolves after the first complete list. */
  readonly synced = new Promise<void>((resolve) => (this.syncedResolve = resolve));
  /** When the API server last answered this informer (list, watch event or clean watch end). */
  lastContact = 0;
  relists = 0;

  constructor(kc: k8s.KubeConfig, name: string, source: Source<T>, log: InformerLogger) {
    this.kc = kc;
    this.name = name;
    this.source = source;
    this.log = log;
  }

  on(handler: (event: InformerEvent, obj: T) => void): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopper.abort();
    this.current?.abort();
  }

  private emit(event: InformerEvent, obj: T): void {
    for (const h of this.handlers) h(event, obj);
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
          if (outcome === 'failed') {
            failures++;
            await sleep(Math.min(30_000, 500 * 2 ** Math.min(failures, 6)), this.stopper.signal);
          } else failures = 0;
        }
      } catch (err) {
        failures++;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        this.log.warn(`${this.name}: list failed, retrying in ${delay} ms`, { error: errorText(err) });
        await sleep(delay, this.stopper.signal);
      }
    }
  }

  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.source.list();
    this.lastContact = Date.now();
    this.relists++;
    const seen = new Set<string>();
    for (const listed of items) {
      const item = this.source.transform?.(listed) ?? listed;
      const key = keyOf(item);
      seen.add(key);
      const old = this.cache.get(key);
      if (old?.metadata?.resourceVersion === item.metadata?.resourceVersion) continue;
      this.cache.set(key, item);
      this.emit('upsert', item);
    }
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
  private async watchOnce(): Promise<'ended' | 'gone' | 'failed'> {
    let gone = false;
    const ended = new Promise<'ended' | 'gone' | 'failed'>((resolve) => {
      const watch = new k8s.Watch(this.kc);
      watch
        .watch(
          this.source.watchPath,
          {
            ...this.source.query,
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            // Like client-go: the server closes the watch after 5-10 minutes and it is re-opened.
            timeoutSeconds: 300 + Math.floor(Math.random() * 300),
          },
          (type: string, obj: T & { code?: number }) => {
            this.lastContact = Date.now();
            if (type === 'ERROR') {
              if (obj.code === 410) gone = true;
              else
                this.log.warn(`${this.name}: watch error event`, {
                  error: JSON.stringify(obj).slice(0, 300),
                });
              this.current?.abort();
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
          (err: unknown) => {
            if (gone || (err as { statusCode?: number } | null)?.statusCode === 410) return resolve('gone');
            const timeout = err instanceof DOMException && err.name === 'TimeoutError';
            if (!err || timeout || this.stopper.signal.aborted) {
              if (!err) this.lastContact = Date.now();
              return resolve('ended');
            }
            this.log.debug(`${this.name}: watch failed`, { error: errorText(err) });
            resolve('failed');
          },
        )
        .then((controller) => (this.current = controller))
        .catch(() => resolve('failed'));
    });
    return ended;
  }
}

export function errorText(err: unknown): string {
  if (err instanceof k8s.ApiException) return `HTTP ${err.code}: ${String(err.body).slice(0, 300)}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
