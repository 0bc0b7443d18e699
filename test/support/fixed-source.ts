// An X509Source that holds one validated SVID (and its own trust domain's bundle) and never rotates unless
// told to: for tests and the bench, where file watching or an agent would only add noise.
import { EventEmitter } from 'node:events';
import {
  validateSvid,
  type Svid,
  type X509Bundle,
  type X509Source,
  type X509Svid,
} from '../../packages/mtls/src/index.ts';
import type { IssuedSvid } from '../../src/pki/index.ts';

export class FixedSource extends EventEmitter<{ update: [X509Svid]; error: [Error] }> implements X509Source {
  private svid: Svid;
  private bundle: X509Bundle;

  constructor(s: Pick<IssuedSvid, 'certChainPem' | 'keyPem' | 'bundlePem'>) {
    super();
    ({ svid: this.svid, bundle: this.bundle } = validateSvid(s));
  }

  current(): Svid {
    return this.svid;
  }

  bundleFor(trustDomain: string): X509Bundle | undefined {
    return trustDomain === this.svid.trustDomain ? this.bundle : undefined;
  }

  trustDomains(): string[] {
    return [this.svid.trustDomain];
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  /** Switches to another SVID (validated like any source's) and emits 'update'. */
  rotate(s: Pick<IssuedSvid, 'certChainPem' | 'keyPem' | 'bundlePem'>): Svid {
    ({ svid: this.svid, bundle: this.bundle } = validateSvid(s));
    this.emit('update', this.svid);
    return this.svid;
  }

  close(): void {}
}
