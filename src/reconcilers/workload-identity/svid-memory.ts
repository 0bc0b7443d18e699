// What the operator knows about the SVID in each managed Secret, so a reconcile does not parse it again:
// the facts of its tls.crt and tls.key (svid-facts.ts) against the current CA, remembered per Secret with
// the digest of the data they were found in. The operator's own writes are remembered as it makes them
// (the facts of an SVID it has just issued are known without parsing), so the reconciles that its own
// Secret and status writes trigger parse nothing. A Secret whose tls.crt or tls.key anyone changed since
// has another digest and is inspected again; so is every Secret once after the CA changes (the CA is part
// of the digest).
import { ContentMemo, contentDigest } from '../../controller-runtime/content-memo.ts';
import { inspectSvid, type LoadedCa, type SecretSvid, type SvidFacts } from '../../pki/index.ts';

/** One entry per managed Secret; the bound only guards against a leak (each entry is a few hundred bytes). */
const DEFAULT_MAX_ENTRIES = 200_000;

type Data = Record<string, string | undefined> | undefined;

export class SvidMemory {
  private readonly memo: ContentMemo<SvidFacts>;
  private readonly inspect: typeof inspectSvid;

  constructor(max = DEFAULT_MAX_ENTRIES, inspect: typeof inspectSvid = inspectSvid) {
    this.memo = new ContentMemo(max);
    this.inspect = inspect;
  }

  get size(): number {
    return this.memo.size;
  }

  /** Lookups answered from memory, and those that had to parse. */
  get stats(): { hits: number; misses: number } {
    return { hits: this.memo.hits, misses: this.memo.misses };
  }

  /**
   * The facts of the SVID in a Secret (`data` as stored, base64; `svid` the same decoded), parsed only when
   * this content was not seen with this CA before. Undefined when tls.crt or tls.key is missing.
   */
  facts(secretKey: string, data: Data, svid: SecretSvid, ca: LoadedCa): SvidFacts | undefined {
    const crt = svid.certChainPem;
    const key = svid.keyPem;
    if (!crt?.trim() || !key?.trim()) return undefined;
    return this.memo.getOrCompute(secretKey, digest(data, ca), () => this.inspect(crt, key, ca));
  }

  /**
   * The facts remembered for a Secret whose tls.crt and tls.key had `content` (svidContent), judged against
   * `ca`; undefined when they were judged against another CA or not at all. Never parses: a cached Secret
   * whose SVID data was dropped (dropSvidData) is answered from here, or read again.
   */
  known(secretKey: string, content: string, ca: LoadedCa): SvidFacts | undefined {
    return this.memo.get(secretKey, caDigest(content, ca));
  }

  /** The operator wrote this data (base64, as sent) into the Secret: an SVID it issued from `ca`. */
  wrote(secretKey: string, data: Data, ca: LoadedCa, facts: SvidFacts): void {
    this.memo.set(secretKey, digest(data, ca), facts);
  }

  forget(secretKey: string): void {
    this.memo.delete(secretKey);
  }
}

/** The digest of a Secret's tls.crt and tls.key (base64, as stored): what identifies its SVID's content. */
export const svidContent = (data: Data): string => contentDigest([data?.['tls.crt'], data?.['tls.key']]);

const caDigest = (content: string, ca: LoadedCa) => contentDigest([ca.fingerprint, ca.chainPem, content]);
const digest = (data: Data, ca: LoadedCa) => caDigest(svidContent(data), ca);
