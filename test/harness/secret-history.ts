// Records every version of the managed Secrets in a namespace (through a watch, so no short-lived state is
// missed) and checks which states can coexist in pods: kubelet updates a mounted Secret some time after the
// API server has it, so a pod may hold any state of a Secret from when it was written until `kubeletDelayMs`
// after it was replaced.
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { chainsTo } from '../../src/pki/index.ts';

export interface SecretStateRecord {
  secret: string;
  /** When the watch delivered it. */
  at: number;
  /** When the next state of the same Secret was delivered (undefined: still current). */
  replacedAt?: number;
  leaf: X509Certificate;
  intermediates: X509Certificate[];
  roots: X509Certificate[];
  bundleKey: string;
}

const certs = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (c) => new X509Certificate(c),
  );

export class SecretHistory {
  readonly states: SecretStateRecord[] = [];
  private readonly current = new Map<string, SecretStateRecord>();
  private controller?: AbortController;
  private watchError?: unknown;

  /**
   * Lists the managed Secrets of `namespace`, then watches them until stop(). A watch that ends (client-node
   * ends each after 30 s) is re-opened from the last resourceVersion seen, so nothing is missed; a watch
   * that cannot continue from there (410 Gone) fails the recording.
   */
  async start(kc: k8s.KubeConfig, namespace: string): Promise<void> {
    const labelSelector = 'app.kubernetes.io/managed-by=svid-operator';
    const list = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedSecret({ namespace, labelSelector });
    for (const s of list.items) this.record(s);
    let resourceVersion = list.metadata?.resourceVersion ?? '';
    const open = async (): Promise<void> => {
      if (this.stopped) return;
      this.controller = await new k8s.Watch(kc).watch(
        `/api/v1/namespaces/${namespace}/secrets`,
        { labelSelector, resourceVersion, allowWatchBookmarks: true },
        (type: string, obj: k8s.V1Secret & { code?: number }) => {
          if (type === 'ERROR') {
            this.watchError ??= new Error(`watch error event: ${JSON.stringify(obj).slice(0, 200)}`);
            return;
          }
          resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
          if (type === 'ADDED' || type === 'MODIFIED') this.record(obj);
        },
        (err: unknown) => {
          if (this.stopped || this.watchError) return;
          const timeout = err instanceof DOMException && err.name === 'TimeoutError';
          if (err && !timeout) {
            this.watchError = err;
            return;
          }
          open().catch((e: unknown) => (this.watchError ??= e));
        },
      );
    };
    await open();
  }

  private stopped = false;

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    if (this.watchError) throw new Error(`the Secret watch failed: ${String(this.watchError)}`);
  }

  private record(s: k8s.V1Secret): void {
    const text = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString();
    const name = s.metadata?.name ?? '';
    const chain = certs(text('tls.crt'));
    const roots = certs(text('ca.crt'));
    if (chain.length === 0 || roots.length === 0) return;
    const previous = this.current.get(name);
    const bundleKey = roots.map((r) => r.fingerprint256).join(',');
    const leaf = chain[0] as X509Certificate;
    if (previous && previous.leaf.fingerprint256 === leaf.fingerprint256 && previous.bundleKey === bundleKey)
      return;
    const now = Date.now();
    if (previous) previous.replacedAt = now;
    const state = { secret: name, at: now, leaf, intermediates: chain.slice(1), roots, bundleKey };
    this.states.push(state);
    this.current.set(name, state);
  }

  /** The states every Secret holds now. */
  latest(): SecretStateRecord[] {
    return [...this.current.values()];
  }
}

export interface PairCheck {
  pairs: number;
  failures: string[];
}

/**
 * Every pair of states of two different Secrets whose pod-visibility windows overlap must trust each other
 * both ways: each leaf chains to the other's bundle, and both leaves are unexpired when the window opens.
 */
export function checkCoexistingPairs(
  states: SecretStateRecord[],
  kubeletDelayMs: number,
  end = Date.now(),
): PairCheck {
  const memo = new Map<string, boolean>();
  const trusts = (s: SecretStateRecord, bundleOf: SecretStateRecord) => {
    const k = `${s.leaf.fingerprint256}|${bundleOf.bundleKey}`;
    let v = memo.get(k);
    if (v === undefined) {
      v = chainsTo(s.leaf, s.intermediates, bundleOf.roots);
      memo.set(k, v);
    }
    return v;
  };
  const until = (s: SecretStateRecord) => (s.replacedAt ?? end) + kubeletDelayMs;
  let pairs = 0;
  const failures: string[] = [];
  for (let i = 0; i < states.length; i++) {
    const x = states[i] as SecretStateRecord;
    for (let j = i + 1; j < states.length; j++) {
      const y = states[j] as SecretStateRecord;
      if (x.secret === y.secret) continue;
      const from = Math.max(x.at, y.at);
      if (from > Math.min(until(x), until(y))) continue;
      pairs++;
      const expired = [x, y].filter((s) => new Date(s.leaf.validTo).getTime() <= from);
      const problems = [
        ...(trusts(x, y) ? [] : [`${y.secret}'s bundle does not trust ${x.secret}'s SVID`]),
        ...(trusts(y, x) ? [] : [`${x.secret}'s bundle does not trust ${y.secret}'s SVID`]),
        ...expired.map((s) => `${s.secret}'s SVID expired before the pair could meet`),
      ];
      if (problems.length > 0) {
        failures.push(`${new Date(from).toISOString()}: ${problems.join('; ')}`);
      }
    }
  }
  return { pairs, failures };
}
