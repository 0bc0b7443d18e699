// A bearer token read from a file that is rotated in place (a projected service-account token is
// replaced by the kubelet well before it expires). Like client-go's cachingTokenSource, the file is
// re-read once its copy is older than `maxAgeMs`; a failed re-read keeps the last token it read.
import { readFile as fsReadFile } from 'node:fs/promises';

export interface TokenFileOptions {
  /** Milliseconds on a monotonic clock. Default performance.now. */
  clock?: () => number;
  readFile?: (file: string) => Promise<string>;
  /** Default 60 s, as client-go. */
  maxAgeMs?: number;
}

export class TokenFile {
  private readonly file: string;
  private readonly clock: () => number;
  private readonly read: (file: string) => Promise<string>;
  private readonly maxAgeMs: number;
  private cached?: { token: string; at: number };
  private pending?: Promise<string>;

  constructor(file: string, o: TokenFileOptions = {}) {
    this.file = file;
    this.clock = o.clock ?? (() => performance.now());
    this.read = o.readFile ?? ((f) => fsReadFile(f, 'utf8'));
    this.maxAgeMs = o.maxAgeMs ?? 60_000;
  }

  /** The token: the cached copy while it is fresh, else the file read again. */
  token(): Promise<string> {
    const now = this.clock();
    if (this.cached && now - this.cached.at < this.maxAgeMs) return Promise.resolve(this.cached.token);
    this.pending ??= this.reread(now).finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async reread(now: number): Promise<string> {
    let token: string;
    try {
      token = (await this.read(this.file)).trim();
      if (!token) throw new Error('it is empty');
    } catch (err) {
      if (this.cached) return this.cached.token;
      throw new Error(
        `cannot read the bearer token file ${this.file} (${(err as Error).message}): check the path and that the service account token is mounted`,
        { cause: err },
      );
    }
    this.cached = { token, at: now };
    return token;
  }
}
