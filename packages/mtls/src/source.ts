// The current SVID, from a mounted Secret directory, reloaded when it changes.
//
// kubelet updates a Secret volume by writing a new ..<timestamp> directory, pointing ..data_tmp at it and
// renaming that over ..data (the atomic switch); tls.crt etc. are symlinks through ..data. So:
//  - the directory is watched, not the files (a file watch follows an inode that kubelet deletes);
//  - a set is read from one resolved ..data target, so the three files always come from one generation;
//  - a stat + content-hash poll backs the watch up, and replaces it where watching fails;
//  - a new set is used only after it parses, its key matches, it chains to its bundle and is in date;
//    otherwise the previous set keeps serving and an 'error' event says why.
import { createHash, createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { spiffeIdOf } from './identity.ts';
import { certificatesFromPem, chainsTo, PemError } from './pem.ts';

export interface SvidFiles {
  cert: string;
  key: string;
  bundle: string;
}

export interface SvidSourceOptions {
  /** File names in the directory; defaults to the kubernetes.io/tls Secret layout. */
  files?: Partial<SvidFiles>;
  /** Backstop poll; also the only mechanism where fs.watch is unavailable. Default 10 s. */
  pollIntervalMs?: number;
  /** Warn ('expiring' event) when less than this fraction of the lifetime is left. Default 0.2. */
  expiryWarningFraction?: number;
  /** Where warnings and errors are logged besides the events; default console. Pass null for none. */
  logger?: { warn(message: string): void } | null;
}

/** One validated SVID generation. */
export interface Svid {
  spiffeId: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** tls.crt as read: the leaf, then any intermediates. */
  certChainPem: string;
  keyPem: string;
  bundlePem: string;
  leaf: X509Certificate;
  /** Increments with every accepted change, so pools can tell connections of old credentials apart. */
  generation: number;
}

export class SvidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SvidError';
  }
}

const DEFAULT_FILES: SvidFiles = { cert: 'tls.crt', key: 'tls.key', bundle: 'ca.crt' };
/** Parses and checks one set of files; throws an SvidError naming the problem (never quoting the key). */
export function validateSvid(
  files: { certChainPem: string; keyPem: string; bundlePem: string },
  now = new Date(),
): Omit<Svid, 'generation'> {
  const asSvidError = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw err instanceof PemError ? new SvidError(err.message) : err;
    }
  };
  const chain = asSvidError(() => certificatesFromPem(files.certChainPem, 'the certificate file'));
  const leaf = chain[0] as X509Certificate;
  let key: KeyObject;
  try {
    key = createPrivateKey(files.keyPem);
  } catch {
    throw new SvidError('the key file is not a readable PEM private key');
  }
  if (!leaf.checkPrivateKey(key)) throw new SvidError('the private key does not match the certificate');
  const roots = asSvidError(() => certificatesFromPem(files.bundlePem, 'the trust bundle'));
  if (!chainsTo(leaf, chain.slice(1), roots))
    throw new SvidError('the certificate does not chain to the trust bundle');
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now >= notAfter) throw new SvidError(`the certificate expired at ${notAfter.toISOString()}`);
  if (now < notBefore) throw new SvidError(`the certificate is not valid before ${notBefore.toISOString()}`);
  const spiffeId = spiffeIdOf(leaf);
  if (!spiffeId)
    throw new SvidError('the certificate has no single spiffe:// URI SAN, so it is not an X.509-SVID');
  return { ...files, spiffeId, serialNumber: leaf.serialNumber.toLowerCase(), notBefore, notAfter, leaf };
}

export interface SvidSourceEvents {
  update: [svid: Svid];
  error: [err: Error];
  expiring: [svid: Svid, msLeft: number];
}

/**
 * The current SVID of a directory. `update` fires after a new set was validated and adopted; `error` when a
 * changed set was refused (the previous one keeps serving); `expiring` when the SVID nears expiry without
 * a rotation.
 */
export class SvidSource extends EventEmitter<SvidSourceEvents> {
  readonly dir: string;
  private readonly files: SvidFiles;
  private readonly opts: Required<Omit<SvidSourceOptions, 'files' | 'logger'>>;
  private readonly logger: { warn(message: string): void } | null;
  private svid!: Svid;
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
  }

  /** Loads the directory (throws an SvidError when it holds no valid SVID) and starts watching it. */
  static async open(dir: string, opts: SvidSourceOptions = {}): Promise<SvidSource> {
    const source = new SvidSource(path.resolve(dir), opts);
    const { svid, digest } = await source.read();
    source.adopt(svid, digest, false);
    source.startWatching();
    return source;
  }

  /** The SVID in use now. */
  current(): Svid {
    return this.svid;
  }

  get spiffeId(): string {
    return this.svid.spiffeId;
  }

  get notAfter(): Date {
    return this.svid.notAfter;
  }

  /** Checks the directory now (the watch and poll call this; tests and callers may too). */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.reloadOnce());
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
    let result: { svid: Omit<Svid, 'generation'>; digest: string };
    try {
      result = await this.read();
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (error.message === this.lastError) return;
      this.lastError = error.message;
      this.logger?.warn(
        `svid: keeping SVID ${this.svid.serialNumber}: the update in ${this.dir} was refused: ${error.message}`,
      );
      // EventEmitter throws an 'error' nobody listens to; the log line above already reported it.
      if (this.listenerCount('error') > 0) this.emit('error', error);
      return;
    }
    this.lastError = undefined;
    if (result.digest === this.digest) return;
    this.adopt(result.svid, result.digest, true);
  }

  private adopt(svid: Omit<Svid, 'generation'>, digest: string, notify: boolean): void {
    this.svid = { ...svid, generation: (this.svid?.generation ?? 0) + 1 };
    this.digest = digest;
    this.scheduleExpiryWarning();
    if (notify) this.emit('update', this.svid);
  }

  /** Reads one consistent set: every file from the same resolved ..data generation when there is one. */
  private async read(): Promise<{ svid: Omit<Svid, 'generation'>; digest: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const base = await realpath(path.join(this.dir, '..data')).catch(() => this.dir);
        const read = (f: string) => readFile(path.join(base, f), 'utf8');
        const [certChainPem, keyPem, bundlePem] = await Promise.all([
          read(this.files.cert),
          read(this.files.key),
          read(this.files.bundle),
        ]);
        const digest = createHash('sha256')
          .update(certChainPem)
          .update('\0')
          .update(keyPem)
          .update('\0')
          .update(bundlePem)
          .digest('hex');
        if (digest === this.digest) return { svid: this.svid, digest };
        return { svid: validateSvid({ certChainPem, keyPem, bundlePem }), digest };
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
