// The bench's own view of every WorkloadIdentity (an informer, as the operator has), with the moment each
// one was first seen in a wanted state; and a bounded pool for creating objects at a fixed concurrency.
import type * as k8s from '@kubernetes/client-node';
import { KubeClient } from '../src/kube/client.ts';
import { clientNodeTransport } from '../src/kube/client-node-transport.ts';
import { identitySource } from '../src/reconcilers/workload-identity/controller.ts';
import { Informer, keyOf } from '../src/controller-runtime/informer.ts';
import type { WorkloadIdentity } from '../src/reconcilers/workload-identity/types.ts';

const quiet = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};

/** Every WorkloadIdentity in the cluster, as the operator would see them, with arrival times. */
export class IdentityWatch {
  private readonly informer: Informer<WorkloadIdentity>;
  private readonly waiters: {
    keys: Set<string>;
    test: (w: WorkloadIdentity) => boolean;
    seen: Map<string, number>;
    done: () => void;
  }[] = [];
  private readonly listeners = new Set<(w: WorkloadIdentity, at: number) => void>();

  constructor(kc: k8s.KubeConfig) {
    const client = new KubeClient(clientNodeTransport(kc));
    this.informer = new Informer(client, 'bench', identitySource(client, ''), quiet);
    this.informer.on((event, w) => {
      if (event !== 'upsert') return;
      const now = performance.now();
      for (const waiter of this.waiters) this.check(waiter, keyOf(w), w, now);
      for (const listener of this.listeners) listener(w, now);
    });
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.synced;
  }

  stop(): void {
    this.informer.stop();
  }

  /** Calls `listener` on every add or update (with performance.now()) until the returned function is called. */
  onUpsert(listener: (w: WorkloadIdentity, at: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(key: string): WorkloadIdentity | undefined {
    return this.informer.get(key);
  }

  /** When each of `keys` first satisfied `test` (objects that already do count from now). */
  when(
    keys: string[],
    test: (w: WorkloadIdentity) => boolean,
    timeoutMs: number,
  ): Promise<Map<string, number>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = [...waiter.keys].filter((k) => !waiter.seen.has(k));
        reject(
          new Error(`${missing.length} identities not there within ${timeoutMs} ms, e.g. ${missing[0]}`),
        );
      }, timeoutMs);
      const waiter = {
        keys: new Set(keys),
        test,
        seen: new Map<string, number>(),
        done: () => {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(waiter.seen);
        },
      };
      this.waiters.push(waiter);
      const now = performance.now();
      for (const key of keys) {
        const w = this.informer.get(key);
        if (w) this.check(waiter, key, w, now);
      }
      if (keys.length === 0) waiter.done();
    });
  }

  private check(waiter: (typeof this.waiters)[number], key: string, w: WorkloadIdentity, now: number): void {
    if (!waiter.keys.has(key) || waiter.seen.has(key) || !waiter.test(w)) return;
    waiter.seen.set(key, now);
    if (waiter.seen.size === waiter.keys.size) waiter.done();
  }
}

/** Runs `fn` over `items`, `concurrency` at a time: as fast as the API server accepts, without a flood of sockets. */
export async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}
