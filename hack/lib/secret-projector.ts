// A Secret projected into a directory the way the kubelet projects a Secret volume: the files in a
// timestamped directory behind the `..data` symlink, replaced by an atomic rename on every change
// (hack/lib/secret-volume.ts). The kubelet re-reads a pod's Secrets every syncFrequency; this polls the
// Secret every `intervalMs` (1 s, like the real node's kubelet here) for processes outside a cluster.
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { SecretVolume, type Files } from './secret-volume.ts';

const keys = ['tls.crt', 'tls.key', 'ca.crt'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The Secret's SVID files, or undefined while it is missing or incomplete. */
function filesOf(secret: k8s.V1Secret): Files | undefined {
  const data = secret.data ?? {};
  if (!keys.every((k) => data[k])) return undefined;
  const decoded = (k: (typeof keys)[number]) => Buffer.from(data[k] ?? '', 'base64').toString();
  return { 'tls.crt': decoded('tls.crt'), 'tls.key': decoded('tls.key'), 'ca.crt': decoded('ca.crt') };
}

/** The serial (lowercase hex) of the first certificate in tls.crt: the SVID's leaf. */
export function leafSerial(files: Files): string {
  return new X509Certificate(files['tls.crt']).serialNumber.toLowerCase();
}

export interface ProjectorOptions {
  intervalMs?: number;
  /** How long to wait for the Secret to appear with all three files. */
  timeoutMs?: number;
  /** Called after each update of the directory (not the first projection) with the new leaf's serial. */
  onUpdate?: (serial: string) => void;
  /** Called when a poll fails; polling goes on (the kubelet keeps the last content too). */
  onError?: (err: unknown) => void;
}

export class SecretProjector {
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  readonly volume: SecretVolume;
  private last: string;
  /** The serial of the SVID the directory holds now. */
  serial: string;

  private constructor(volume: SecretVolume, last: string, serial: string) {
    this.volume = volume;
    this.last = last;
    this.serial = serial;
  }

  get dir(): string {
    return this.volume.dir;
  }

  /** Waits for the Secret, projects it into a new directory and keeps the directory up to date. */
  static async start(
    core: k8s.CoreV1Api,
    namespace: string,
    name: string,
    opts: ProjectorOptions = {},
  ): Promise<SecretProjector> {
    const interval = opts.intervalMs ?? 1000;
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const secret = await core.readNamespacedSecret({ namespace, name }).catch(() => undefined);
      const files = secret && filesOf(secret);
      if (files) {
        const p = new SecretProjector(
          await SecretVolume.create(files),
          JSON.stringify(files),
          leafSerial(files),
        );
        p.loop = p.poll(core, namespace, name, interval, opts);
        return p;
      }
      if (Date.now() > deadline)
        throw new Error(
          `Secret ${namespace}/${name} did not appear with ${keys.join(', ')} within ${timeoutMs / 1000} s; ` +
            `is the operator running and the WorkloadIdentity Ready?`,
        );
      await sleep(interval);
    }
  }

  private async poll(
    core: k8s.CoreV1Api,
    namespace: string,
    name: string,
    interval: number,
    opts: ProjectorOptions,
  ): Promise<void> {
    while (!this.stopped) {
      await sleep(interval);
      if (this.stopped) return;
      try {
        const files = filesOf(await core.readNamespacedSecret({ namespace, name }));
        const content = files && JSON.stringify(files);
        if (files && content !== this.last) {
          const serial = leafSerial(files);
          await this.volume.swap(files);
          this.last = content ?? '';
          this.serial = serial;
          opts.onUpdate?.(serial);
        }
      } catch (err) {
        opts.onError?.(err);
      }
    }
  }

  /** Stops updating and removes the directory. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.volume.remove();
  }
}
