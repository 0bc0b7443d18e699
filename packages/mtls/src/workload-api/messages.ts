// The Workload API messages this library uses, by the field numbers of the SPIFFE workload.proto
// (github.com/spiffe/go-spiffe/v2 proto/spiffe/workload/workload.proto):
//
//   message X509SVIDRequest {}
//   message X509SVIDResponse { repeated X509SVID svids = 1; repeated bytes crl = 2;
//                              map<string, bytes> federated_bundles = 3; }
//   message X509SVID { string spiffe_id = 1; bytes x509_svid = 2; bytes x509_svid_key = 3;
//                      bytes bundle = 4; string hint = 5; }
//
// A map field is a repeated embedded message { key = 1; value = 2; }; a later entry for a key replaces an
// earlier one. Scalar fields seen twice keep the last value. Unknown fields are skipped.
import { concat, expectBytes, readFields, readString, writeLenField } from './protobuf.ts';

export const FETCH_X509_SVID_PATH = '/SpiffeWorkloadAPI/FetchX509SVID';

export interface X509SvidMessage {
  spiffeId: string;
  /** DER certificates, concatenated: the leaf first, then intermediates. */
  x509Svid: Uint8Array;
  /** DER PKCS#8 private key. */
  x509SvidKey: Uint8Array;
  /** DER certificates of the SVID's trust domain, concatenated. */
  bundle: Uint8Array;
  hint: string;
}

export interface X509SvidResponseMessage {
  svids: X509SvidMessage[];
  crl: Uint8Array[];
  /** Keyed as sent (a trust domain name or its spiffe:// ID); values are concatenated DER certificates. */
  federatedBundles: Map<string, Uint8Array>;
}

const EMPTY: Uint8Array = new Uint8Array(0);

export function decodeX509Svid(buf: Uint8Array): X509SvidMessage {
  const svid: X509SvidMessage = {
    spiffeId: '',
    x509Svid: EMPTY,
    x509SvidKey: EMPTY,
    bundle: EMPTY,
    hint: '',
  };
  for (const f of readFields(buf)) {
    if (f.number === 1) svid.spiffeId = readString(f, 'X509SVID.spiffe_id');
    else if (f.number === 2) svid.x509Svid = expectBytes(f, 'X509SVID.x509_svid');
    else if (f.number === 3) svid.x509SvidKey = expectBytes(f, 'X509SVID.x509_svid_key');
    else if (f.number === 4) svid.bundle = expectBytes(f, 'X509SVID.bundle');
    else if (f.number === 5) svid.hint = readString(f, 'X509SVID.hint');
  }
  return svid;
}

function decodeMapEntry(buf: Uint8Array): [string, Uint8Array] {
  let key = '';
  let value = EMPTY;
  for (const f of readFields(buf)) {
    if (f.number === 1) key = readString(f, 'federated_bundles key');
    else if (f.number === 2) value = expectBytes(f, 'federated_bundles value');
  }
  return [key, value];
}

/** Decodes an X509SVIDResponse. Throws only WorkloadApiError('malformed'). */
export function decodeX509SvidResponse(buf: Uint8Array): X509SvidResponseMessage {
  const out: X509SvidResponseMessage = { svids: [], crl: [], federatedBundles: new Map() };
  for (const f of readFields(buf)) {
    if (f.number === 1) out.svids.push(decodeX509Svid(expectBytes(f, 'X509SVIDResponse.svids')));
    else if (f.number === 2) out.crl.push(expectBytes(f, 'X509SVIDResponse.crl'));
    else if (f.number === 3) {
      const [k, v] = decodeMapEntry(expectBytes(f, 'X509SVIDResponse.federated_bundles'));
      out.federatedBundles.set(k, v);
    }
  }
  return out;
}

/** Encodes an X509SVIDResponse (for tests and fakes that play the agent). Empty fields are left out. */
export function encodeX509SvidResponse(msg: X509SvidResponseMessage): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of msg.svids) {
    const fields: Uint8Array[] = [];
    if (s.spiffeId) fields.push(writeLenField(1, s.spiffeId));
    if (s.x509Svid.length) fields.push(writeLenField(2, s.x509Svid));
    if (s.x509SvidKey.length) fields.push(writeLenField(3, s.x509SvidKey));
    if (s.bundle.length) fields.push(writeLenField(4, s.bundle));
    if (s.hint) fields.push(writeLenField(5, s.hint));
    parts.push(writeLenField(1, concat(fields)));
  }
  for (const c of msg.crl) parts.push(writeLenField(2, c));
  for (const [k, v] of msg.federatedBundles)
    parts.push(writeLenField(3, concat([writeLenField(1, k), writeLenField(2, v)])));
  return concat(parts);
}

/** X509SVIDRequest has no fields: its encoding is empty. */
export const X509_SVID_REQUEST = new Uint8Array(0);
