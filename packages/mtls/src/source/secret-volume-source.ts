// The current SVID, from a mounted Secret directory, reloaded when it changes.
//
// kubelet updates a Secret volume by writing a new ..<timestamp> directory, pointing ..data_tmp at it and
// renaming that over ..data (the atomic switch); tls.crt etc. are symlinks through ..data. So:
//  - the directory is watched, not the files (a file watch follows an inode that kubelet deletes);
//  - a set is read from one resolved ..data target, so the three files always come from one generation;
//  - a stat + content-hash poll backs the watch up, and replaces it where watching fails;
//  - a new set is used only after it parses, its key matches, it chains to its bundle and is in date;
//    otherwise the previous set keeps serving and an 'error' event says why.
//  - ca.crt is the bundle of the SVID's own trust domain; other trust domains' roots (federation) come only
//    from `federatedBundles`, each kept apart, so a root in one can never vouch for another's IDs.
import { createHash, createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { inspect } from 'node:util';
import { certificatesFromPem, chainsTo, PemError } from '../pem.ts';
import { validateTrustDomain } from '../spiffe-id.ts';
import { svidLeafId } from '../x509-svid.ts';
import type { X509Bundle, X509Source, X509SourceEvents, X509Svid } from './x509-source.ts';
import { splitCredentialBundle } from './credential-bundle.ts';

export interface SvidFiles {
  cert: string;
  key: string;
  bundle: string;
}

export interface SvidSourceOptions {
  /** File names in the directory; defaults to the kubernetes.io/tls Secret layout. */
  files?: Partial<SvidFiles>;
  /** Roots of other trust domains (federation), PEM by trust domain. ca.crt is always the SVID's own. */
  federatedBundles?: Record<string, string>;
  /** Backstop poll; also the only mechanism where fs.watch is unavailable. Default 10 s. */
  pollIntervalMs?: number;
  /** Warn ('expiring' event) when less than this fraction of the lifetime is left. Default 0.2. */
  expiryWarningFraction?: number;
  /** Where warnings and errors are logged besides the events; default console. Pass null for none. */
  logger?: { warn(message: string): void } | null;
}

/** One validated SVID generation from the directory. */
export interface Svid extends X509Svid {
  /** The leaf certificate (certificates[0]). */
  readonly leaf: X509Certificate;
}

export class SvidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SvidError';
  }
}

const DEFAULT_FILES: SvidFiles = { cert: 'tls.crt', key: 'tls.key', bundle: 'ca.crt' };

/** An SVID whose key never shows: not in console.log, util.inspect or JSON.stringify. */
function makeSvid(fields: Omit<Svid, 'privateKey'>, privateKey: KeyObject): Svid {
  const svid = { ...fields } as Svid;
  Object.defineProperty(svid, 'privateKey', { value: privateKey, enumerable: false });
  const shown = () => ({
    spiffeId: svid.spiffeId,
    serialNumber: svid.serialNumber,
    notBefore: svid.notBefore,
    notAfter: svid.notAfter,
    privateKey: '[redacted]',
  });
  Object.defineProperty(svid, 'toJSON', { value: shown, enumerable: false });
  Object.defineProperty(svid, inspect.custom, { value: () => `Svid ${inspect(shown())}`, enumerable: false });
  return Object.freeze(svid);
}

function asSvidError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof PemError ? new SvidError(err.message) : err;
  }
}

/**
 * Parses and checks one set of files: the key matches, the leaf follows the X.509-SVID rules, it chains to
 * the bundle and is in date. Throws an SvidError naming the problem (never quoting the key).
 */
export function validateSvid(
  files: { certChainPem: string; keyPem: string; bundlePem: string },
  now = new Date(),
): { svid: Svid; bundle: X509Bundle } {
  const chain = asSvidError(() => certificatesFromPem(files.certChainPem, 'the certificate file'));
  let key: KeyObject;
  try {
    key = createPrivateKey(files.keyPem);
  } catch {
    throw new SvidError('the key file is not a readable PEM private key');
  }
  const roots = asSvidError(() => certificatesFromPem(files.bundlePem, 'the trust bundle'));
  return validateSvidParts({ chain, key, roots }, now);
}

/**
 * The same checks on parsed parts (the Workload API delivers DER and a KeyObject): the key matches the leaf,
 * the leaf follows the X.509-SVID rules, the chain reaches `roots` (its own trust domain's) and is in date.
 */
export function validateSvidParts(
  parts: { chain: readonly X509Certificate[]; key: KeyObject; roots: readonly X509Certificate[] },
  now = new Date(),
): { svid: Svid; bundle: X509Bundle } {
  const { chain, key } = parts;
  const leaf = chain[0];
  if (!leaf) throw new SvidError('the certificate chain is empty');
  const roots = [...parts.roots];
  if (!leaf.checkPrivateKey(key)) throw new SvidError('the private key does not match the certificate');
  if (roots.length === 0) throw new SvidError('the trust bundle is empty');
  if (!chainsTo(leaf, chain.slice(1), roots))
    throw new SvidError('the certificate does not chain to the trust bundle');
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now >= notAfter) throw new SvidError(`the certificate expired at ${notAfter.toISOString()}`);
  if (now < notBefore) throw new SvidError(`the certificate is not valid before ${notBefore.toISOString()}`);
  const id = svidLeafId(leaf);
  if (!id.ok) throw new SvidError(`the certificate is not an X.509-SVID: ${id.problem}`);
  const svid = makeSvid(
    {
      spiffeId: id.peer.id,
      trustDomain: id.peer.trustDomain,
      certificates: [...chain],
      leaf,
      serialNumber: leaf.serialNumber.toLowerCase(),
      notBefore,
      notAfter,
    },
    key,
  );
  return { svid, bundle: { trustDomain: id.peer.trustDomain, roots } };
}

export interface SvidSourceEvents extends X509SourceEvents {
  update: [svid: Svid];
  expiring: [svid: Svid, msLeft: number];
}

/**
 * The SVID of a mounted Secret directory, an X509Source. `update` fires after a new set was validated and
 * adopted; `error` when a changed set was refused (the previous one keeps serving); `expiring` when the SVID
 * nears expiry without a rotation. A listener that throws is logged and never stops hot reload; an `error`
 * with no listener is only logged.
 */
export class SvidSource extends EventEmitter<SvidSourceEvents> implements X509Source {
  readonly dir: string;
  private readonly files: SvidFiles;
  private readonly opts: Required<Omit<SvidSourceOptions, 'files' | 'logger' | 'federatedBundles'>>;
  private readonly logger: { warn(message: string): void } | null;
  private readonly federated = new Map<string, X509Bundle>();
  private svid!: Svid;
  private ownBundle!: X509Bundle;
  private digest = '';
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private expiryTimer?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  private closed = false;
  private lastError?: string;

  private constructor(dir: string, opts: SvidSourceOptions) {
    super();
    this.dir = dir;
    this.files = { ...DEFAULT_FILES, ...opts.files };
    this.opts = {
      pollIntervalMs: opts.pollIntervalMs ?? 10_000,
      expiryWarningFraction: opts.expiryWarningFraction ?? 0.2,
    };
    this.logger = opts.logger === undefined ? console : opts.logger;
    for (const [td, pem] of Object.entries(opts.federatedBundles ?? {})) {
      validateTrustDomain(td);
      const roots = asSvidError(() => certificatesFromPem(pem, `the federated bundle of ${td}`));
      this.federated.set(td, { trustDomain: td, roots });
    }
  }

  /** Loads the directory (throws an SvidError when it holds no valid SVID) and starts watching it. */
  static async open(dir: string, opts: SvidSourceOptions = {}): Promise<SvidSource> {
    const source = new SvidSource(path.resolve(dir), opts);
    const { svid, bundle, digest } = await source.read();
    if (source.federated.has(svid.trustDomain)) {
      throw new SvidError(
        `federatedBundles has an entry for ${svid.trustDomain}, the SVID's own trust domain, whose bundle is ${source.files.bundle}: remove it`,
      );
    }
    source.adopt(svid, bundle, digest, false);
    source.startWatching();
    return source;
  }

  /** The SVID in use now. */
  current(): Svid {
    return this.svid;
  }

  bundleFor(trustDomain: string): X509Bundle | undefined {
    return trustDomain === this.svid.trustDomain ? this.ownBundle : this.federated.get(trustDomain);
  }

  trustDomains(): string[] {
    return [this.svid.trustDomain, ...this.federated.keys()];
  }

  /** An opened source has its SVID: resolves at once. */
  ready(): Promise<void> {
    return this.svid ? Promise.resolve() : Promise.reject(new SvidError(`${this.dir} holds no SVID yet`));
  }

  get spiffeId(): string {
    return this.svid.spiffeId;
  }

  get notAfter(): Date {
    return this.svid.notAfter;
  }

  /**
   * Calls each listener on its own: one that throws is logged and neither stops the others nor hot reload;
   * an 'error' nobody listens to is only logged (EventEmitter would throw it).
   */
  override emit<K extends keyof SvidSourceEvents>(event: K, ...args: SvidSourceEvents[K]): boolean {
    const listeners = this.rawListeners(event) as ((...a: unknown[]) => void)[];
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (err) {
        this.logger?.warn(
          `svid: a listener of '${String(event)}' threw: ${(err as Error)?.message ?? String(err)}`,
        );
      }
    }
    return listeners.length > 0;
  }

  /** Checks the directory now (the watch and poll call this; tests and callers may too). Never rejects. */
  reload(): Promise<void> {
    this.reloading = this.reloading
      .then(() => this.reloadOnce())
      .catch((err: unknown) => {
        this.logger?.warn(`svid: reloading ${this.dir} failed: ${(err as Error)?.message ?? String(err)}`);
      });
    return this.reloading;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounce);
    clearTimeout(this.expiryTimer);
  }

  private async reloadOnce(): Promise<void> {
    if (this.closed) return;
    let result: { svid: Svid; bundle: X509Bundle; digest: string };
    try {
      result = await this.read();
      if (result.svid.trustDomain !== this.svid.trustDomain) {
        throw new SvidError(
          `the new SVID ${result.svid.spiffeId} is of another trust domain than ${this.svid.spiffeId}: restart to change trust domains`,
        );
      }
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (error.message === this.lastError) return;
      this.lastError = error.message;
      this.logger?.warn(
        `svid: keeping SVID ${this.svid.serialNumber}: the update in ${this.dir} was refused: ${error.message}`,
      );
      this.emit('error', error);
      return;
    }
    this.lastError = undefined;
    if (result.digest === this.digest) return;
    this.adopt(result.svid, result.bundle, result.digest, true);
  }

  private adopt(svid: Svid, bundle: X509Bundle, digest: string, notify: boolean): void {
    this.svid = svid;
    this.ownBundle = bundle;
    this.digest = digest;
    this.scheduleExpiryWarning();
    if (notify) this.emit('update', this.svid);
  }

  /** Reads one consistent set: every file from the same resolved ..data generation when there is one. */
  private async read(): Promise<{ svid: Svid; bundle: X509Bundle; digest: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const base = await realpath(path.join(this.dir, '..data')).catch(() => this.dir);
        const read = (f: string) => readFile(path.join(base, f), 'utf8');
        const [certFile, keyFile, bundlePem] = await Promise.all([
          read(this.files.cert),
          read(this.files.key),
          read(this.files.bundle),
        ]);
        // One file holding key and chain (a pod certificate's credentialBundlePath): read once, split.
        const files =
          this.files.cert === this.files.key
            ? splitCredentialBundle(keyFile)
            : { certChainPem: certFile, keyPem: keyFile };
        if ('problem' in files) throw new SvidError(`${this.files.key}: ${files.problem}`);
        const { certChainPem, keyPem } = files;
        const digest = createHash('sha256')
          .update(certChainPem)
          .update('\0')
          .update(keyPem)
          .update('\0')
          .update(bundlePem)
          .digest('hex');
        if (digest === this.digest) return { svid: this.svid, bundle: this.ownBundle, digest };
        return { ...validateSvid({ certChainPem, keyPem, bundlePem }), digest };
      } catch (err) {
        // kubelet removed the old generation between realpath and read: read the new one.
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && attempt < 3) continue;
        if (code === 'ENOENT') {
          throw new SvidError(
            `${this.dir} is missing ${[this.files.cert, this.files.key, this.files.bundle].join(', ')} (is the Secret mounted there?)`,
          );
        }
        throw err;
      }
    }
  }

  private startWatching(): void {
    const onChange = () => {
      clearTimeout(this.debounce);
      // kubelet's swap is several filesystem operations; read once they settle.
      this.debounce = setTimeout(() => void this.reload(), 30);
    };
    let interval = this.opts.pollIntervalMs;
    try {
      this.watcher = watch(this.dir, { persistent: false }, onChange);
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
        this.restartPoll(Math.min(interval, 1000));
      });
    } catch {
      interval = Math.min(interval, 1000);
    }
    this.restartPoll(interval);
  }

  private restartPoll(intervalMs: number): void {
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => void this.reload(), intervalMs);
    this.pollTimer.unref();
  }

  private scheduleExpiryWarning(): void {
    clearTimeout(this.expiryTimer);
    const { notBefore, notAfter } = this.svid;
    const warnAt =
      notAfter.getTime() - (notAfter.getTime() - notBefore.getTime()) * this.opts.expiryWarningFraction;
    const fire = () => {
      if (this.closed) return;
      const left = this.svid.notAfter.getTime() - Date.now();
      this.logger?.warn(
        `svid: SVID ${this.svid.serialNumber} for ${this.svid.spiffeId} expires in ${Math.round(left / 1000)} s and has not been rotated`,
      );
      this.emit('expiring', this.svid, left);
    };
    const delay = warnAt - Date.now();
    if (delay <= 0) {
      setImmediate(fire);
      return;
    }
    this.expiryTimer = setTimeout(fire, Math.min(delay, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }
}
