// The library's one source interface, like go-spiffe's X509Source: whatever supplies the SVID and the trust
// bundles (a Secret volume, a pod-certificate volume, the SPIFFE Workload API) implements it, and every
// server and client is written against it.
import type { KeyObject, X509Certificate } from 'node:crypto';

/** One X.509-SVID with its private key. The key is a KeyObject and is never printed or serialized. */
export interface X509Svid {
  /** The SPIFFE ID, e.g. spiffe://example.org/ns/shop/sa/payments. */
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** The leaf first, then any intermediates, as presented to peers. */
  readonly certificates: readonly X509Certificate[];
  readonly privateKey: KeyObject;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The roots of one trust domain. A peer is verified only against the bundle of the trust domain it claims. */
export interface X509Bundle {
  readonly trustDomain: string;
  readonly roots: readonly X509Certificate[];
}

export interface X509SourceEvents {
  /** A new SVID or new bundles were validated and are in use. */
  update: [svid: X509Svid];
  /** An update was refused (the previous SVID and bundles keep serving), or the source failed. */
  error: [err: Error];
}

export interface X509Source {
  /** The SVID in use now. */
  current(): X509Svid;
  /** The bundle of a trust domain, or undefined when the source trusts nothing of it. */
  bundleFor(trustDomain: string): X509Bundle | undefined;
  /** The trust domains the source holds bundles for. */
  trustDomains(): string[];
  /** Resolves once an SVID is available; rejects after `timeoutMs` with a message saying what is missing. */
  ready(timeoutMs?: number): Promise<void>;
  on(event: 'update', listener: (svid: X509Svid) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: 'update', listener: (svid: X509Svid) => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
  /** Stops watching; servers and clients keep the last SVID. */
  close(): void;
}

/** Every root of every trust domain of a source: what OpenSSL is given, before the per-domain check. */
export function allRoots(source: X509Source): X509Certificate[] {
  return source.trustDomains().flatMap((td) => source.bundleFor(td)?.roots ?? []);
}
