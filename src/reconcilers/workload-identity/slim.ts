// What the caches keep. The operator holds every WorkloadIdentity and every managed Secret for its whole
// life, so what each copy carries decides its memory at 10,000 identities (measured by `npm run bench`).
import type * as k8s from '@kubernetes/client-node';
import { withoutManagedFields } from '../../controller-runtime/managed-fields.ts';
import { ANNOTATION_RENEW_REQUEST } from './renew-request.ts';
import { ANNOTATION_CA, ANNOTATION_NOT_AFTER, MANAGED_BY_LABEL, OWNER_LABEL } from './types.ts';

/**
 * One copy of each of a few recent strings: values that are the same in every cached object (or in most of
 * them) but arrive from the API server as a string of their own in each (JSON.parse shares only the shortest).
 * Only the most recent `max` distinct values are remembered; an older one is simply not shared.
 */
export class StringPool {
  private readonly seen = new Map<string, string>();
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  get size(): number {
    return this.seen.size;
  }

  intern = <S extends string | undefined>(value: S): S => {
    if (value === undefined) return value;
    const shared = this.seen.get(value);
    if (shared !== undefined) return shared as S;
    this.seen.set(value, value);
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value as string);
    return value;
  };
}

/**
 * Shares one copy of each trust bundle among the Secrets that hold it (every managed Secret's ca.crt is the
 * same text: one bundle per CA, a few during a rotation), and of the metadata values every managed Secret
 * and identity repeats (apiVersion, kind, type, the managed-by label, the CA fingerprint annotation, the
 * owner's apiVersion and kind): ~300 bytes per identity at 10,000.
 */
export class BundleInterner {
  private readonly bundles: StringPool;
  private readonly common = new StringPool(32);
  /**
   * Service accounts and SPIFFE IDs: many identities may share one, but a cluster can have thousands, so they
   * have a pool of their own and never push the few values in `common` out.
   */
  private readonly accounts = new StringPool(1024);
  /**
   * RFC 3339 timestamps (whole seconds): an identity's creation, its SVID's notBefore, notAfter and renewal
   * time, its Ready condition's transition, the Secret's notAfter annotation. Identities issued in the same
   * second share them, and a wave issues hundreds per second: six strings per identity (240 bytes at 5,000
   * identities) were 365 distinct values. Recent values only, so a steady state shares what it can.
   */
  private readonly times = new StringPool(256);
  /**
   * The cached identity that owns a Secret (by namespace and name), so a Secret's owner name, owner uid and
   * its own name share the identity's strings instead of holding a copy each (~130 bytes per identity).
   * Set by the controller once the identity cache exists; without it nothing is shared.
   */
  ownerOf?: (namespace: string, name: string) => OwnerShape | undefined;

  constructor(max = 8) {
    this.bundles = new StringPool(max);
  }

  get size(): number {
    return this.bundles.size;
  }

  secret = (secret: k8s.V1Secret): k8s.V1Secret => {
    withOnlyDecisionMetadata(secret);
    withOnlySvidData(secret);
    const intern = this.common.intern;
    secret.apiVersion = intern(secret.apiVersion);
    secret.kind = intern(secret.kind);
    secret.type = intern(secret.type);
    const m = secret.metadata;
    if (m?.labels?.[MANAGED_BY_LABEL] !== undefined)
      m.labels[MANAGED_BY_LABEL] = intern(m.labels[MANAGED_BY_LABEL]);
    if (m?.annotations?.[ANNOTATION_CA] !== undefined)
      m.annotations[ANNOTATION_CA] = intern(m.annotations[ANNOTATION_CA]);
    if (m?.annotations?.[ANNOTATION_NOT_AFTER] !== undefined)
      m.annotations[ANNOTATION_NOT_AFTER] = this.times.intern(m.annotations[ANNOTATION_NOT_AFTER]);
    for (const r of m?.ownerReferences ?? []) {
      r.apiVersion = intern(r.apiVersion);
      r.kind = intern(r.kind);
    }
    if (m) this.shareWithOwner(m);
    const bundle = secret.data?.['ca.crt'];
    if (bundle !== undefined && secret.data) secret.data['ca.crt'] = this.bundles.intern(bundle);
    return secret;
  };

  /**
   * An identity as the cache keeps it (slimIdentity), with one shared copy of the values many identities
   * repeat: apiVersion and kind, the service account, duration, renewBefore and key algorithm, the SPIFFE ID
   * (the same for every identity of one service account), and the Ready condition's type, status and reason.
   */
  identity = <T extends CachedIdentityShape>(wi: T): T => {
    slimIdentity(wi);
    const intern = this.common.intern;
    const time = this.times.intern;
    if (typeof wi.apiVersion === 'string') wi.apiVersion = intern(wi.apiVersion);
    if (typeof wi.kind === 'string') wi.kind = intern(wi.kind);
    const meta = wi.metadata as {
      name?: unknown;
      namespace?: unknown;
      uid?: unknown;
      creationTimestamp?: unknown;
    };
    if (typeof meta.creationTimestamp === 'string') meta.creationTimestamp = time(meta.creationTimestamp);
    // The previous version of this identity (still cached while the new one is transformed): its name, uid
    // and secretName strings are what the identity's Secret shares (shareWithOwner), so a new version keeps
    // them when they are equal instead of bringing copies of its own.
    const previous =
      typeof meta.namespace === 'string' && typeof meta.name === 'string'
        ? this.ownerOf?.(meta.namespace, meta.name)
        : undefined;
    if (previous) {
      if (previous.metadata.name === meta.name) meta.name = previous.metadata.name;
      if (previous.metadata.uid !== undefined && previous.metadata.uid === meta.uid)
        meta.uid = previous.metadata.uid;
      const secretName = previous.spec?.secretName;
      if (wi.spec && secretName !== undefined && secretName === wi.spec.secretName)
        wi.spec.secretName = secretName;
    }
    const spec = wi.spec;
    if (spec) {
      // A service account named as the identity (a common convention) shares the name's string.
      if (typeof spec.serviceAccountName === 'string')
        spec.serviceAccountName =
          spec.serviceAccountName === meta.name ? meta.name : this.accounts.intern(spec.serviceAccountName);
      if (typeof spec.duration === 'string') spec.duration = intern(spec.duration);
      if (typeof spec.renewBefore === 'string') spec.renewBefore = intern(spec.renewBefore);
      if (spec.privateKey && typeof spec.privateKey.algorithm === 'string')
        spec.privateKey.algorithm = intern(spec.privateKey.algorithm);
    }
    const status = wi.status;
    if (status) {
      if (typeof status.spiffeID === 'string') status.spiffeID = this.accounts.intern(status.spiffeID);
      for (const field of ['notBefore', 'notAfter', 'renewalTime'] as const) {
        const value = status[field];
        if (typeof value === 'string') status[field] = time(value);
      }
      if (Array.isArray(status.conditions)) {
        for (const c of status.conditions) {
          if (!c || typeof c !== 'object') continue;
          if (typeof c.type === 'string') c.type = intern(c.type);
          if (typeof c.status === 'string') c.status = intern(c.status);
          if (typeof c.reason === 'string') c.reason = intern(c.reason);
          if (typeof c.lastTransitionTime === 'string') c.lastTransitionTime = time(c.lastTransitionTime);
        }
      }
    }
    return wi;
  };

  /**
   * A managed Secret's name, its owner label and its controller reference's name and uid are equal to
   * strings its identity holds: use the identity's. Only values that are equal are replaced, so the
   * Secret reads exactly as it arrived.
   */
  private shareWithOwner(m: k8s.V1ObjectMeta): void {
    const ref = m.ownerReferences?.find((r) => r.controller);
    if (!ref || !this.ownerOf || m.namespace === undefined) return;
    const owner = this.ownerOf(m.namespace, ref.name);
    const name = owner?.metadata.name;
    if (owner === undefined || name === undefined || name !== ref.name) return;
    ref.name = name;
    if (owner.metadata.uid !== undefined && owner.metadata.uid === ref.uid) ref.uid = owner.metadata.uid;
    if (m.labels?.[OWNER_LABEL] === name) m.labels[OWNER_LABEL] = name;
    const secretName = owner.spec?.secretName;
    if (secretName !== undefined && secretName === m.name) m.name = secretName;
  }
}

/** What BundleInterner.secret reads of a Secret's owning identity. */
export interface OwnerShape {
  metadata: { name?: string; uid?: string };
  spec?: { secretName?: string };
}

/** The data keys an SVID Secret holds; nothing else in a managed Secret is kept in memory. */
export const SVID_DATA_KEYS: readonly string[] = ['tls.crt', 'tls.key', 'ca.crt'];

const extraKeys = new WeakMap<object, number>();

/**
 * Keeps only the SVID's data keys (what verification needs) and records how many others there were. A
 * tenant who pads its managed Secrets with extra keys (up to the API server's 1 MiB per Secret) cannot
 * make the operator hold them; the count marks the Secret as tampered with.
 */
export function withOnlySvidData(secret: k8s.V1Secret): k8s.V1Secret {
  const data = secret.data;
  if (!data) return secret;
  const kept = Object.entries(data).filter(([key]) => SVID_DATA_KEYS.includes(key));
  const extra = Object.keys(data).length - kept.length;
  if (extra > 0) {
    secret.data = Object.fromEntries(kept);
    extraKeys.set(secret, extra);
  }
  return secret;
}

/** How many data keys besides the SVID's a cached Secret had (0 for one never trimmed). */
export function extraDataKeys(secret: k8s.V1Secret): number {
  return extraKeys.get(secret) ?? 0;
}

/** Cached Secrets whose tls.crt and tls.key were dropped, with the digest of what they held (svidContent). */
const droppedSvids = new WeakMap<object, string>();

/**
 * Drops tls.crt and tls.key from a cached Secret once the operator knows what they hold (their facts are
 * remembered in svid-memory.ts under `content`, their digest): ~1.4 KB per identity that no decision reads
 * again while the content stays the same. ca.crt stays (it is shared, see BundleInterner, and the CA
 * rotation counts the Secrets holding the current bundle). A Secret the watch delivers again is a new object
 * with all its data, so content changed by anyone is always inspected; one whose facts are not known for the
 * current CA (after a CA change) is read from the API server again.
 */
export function dropSvidData(secret: k8s.V1Secret, content: string): void {
  const data = secret.data;
  if (!data || droppedSvids.has(secret)) return;
  const bundle = data['ca.crt'];
  secret.data = bundle === undefined ? {} : { 'ca.crt': bundle };
  droppedSvids.set(secret, content);
}

/** The digest of the tls.crt and tls.key a cached Secret held before dropSvidData; undefined if it holds them. */
export function droppedSvidContent(secret: k8s.V1Secret): string | undefined {
  return droppedSvids.get(secret);
}

/** The labels and annotations of a managed Secret that decisions read; the others are never cached. */
const KEPT_LABELS: readonly string[] = [MANAGED_BY_LABEL, OWNER_LABEL];
// The CA rotation's phase facts (ca-rotation.ts) read which CA signed each SVID and until when.
const KEPT_ANNOTATIONS: readonly string[] = [ANNOTATION_CA, ANNOTATION_NOT_AFTER];

/**
 * Keeps only the metadata the decisions read (name, namespace, resourceVersion, uid, deletionTimestamp, the
 * managed-by and owner labels, the CA and notAfter annotations, the controller ownerReference's identity).
 * Everything else a managed Secret carries (managedFields, the SPIFFE ID and serial annotations written for
 * people, template labels and annotations, other tools' metadata) is left to the API server: patches never
 * replace it, so nothing is lost by not holding it. At 10,000 identities this is megabytes.
 */
export function withOnlyDecisionMetadata(secret: k8s.V1Secret): k8s.V1Secret {
  const m = secret.metadata;
  if (!m) return secret;
  const pick = (from: Record<string, string> | undefined, keys: readonly string[]) => {
    if (!from) return undefined;
    const kept = Object.fromEntries(keys.filter((k) => from[k] !== undefined).map((k) => [k, from[k]]));
    return Object.keys(kept).length ? (kept as Record<string, string>) : undefined;
  };
  const owners = m.ownerReferences?.map((r) => ({
    apiVersion: r.apiVersion,
    kind: r.kind,
    name: r.name,
    uid: r.uid,
    controller: r.controller,
  }));
  const kept: k8s.V1ObjectMeta = {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    deletionTimestamp: m.deletionTimestamp,
    labels: pick(m.labels, KEPT_LABELS),
    annotations: pick(m.annotations, KEPT_ANNOTATIONS),
    ownerReferences: owners,
  };
  secret.metadata = Object.fromEntries(
    Object.entries(kept).filter(([, v]) => v !== undefined),
  ) as k8s.V1ObjectMeta;
  return secret;
}

/** What BundleInterner.identity reads of an identity; any field may be missing or of another type. */
export interface CachedIdentityShape {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; annotations?: Record<string, string> };
  spec?: {
    serviceAccountName?: string;
    secretName?: string;
    duration?: string;
    renewBefore?: string;
    privateKey?: { algorithm?: string };
  };
  status?: {
    spiffeID?: string;
    serialNumber?: string;
    notBefore?: string;
    notAfter?: string;
    renewalTime?: string;
    conditions?: { type?: string; status?: string; reason?: string; lastTransitionTime?: string }[];
  };
}

/**
 * The metadata of a WorkloadIdentity that decisions read: its name and namespace, uid (owner references,
 * events), creationTimestamp (which of two identities naming one Secret came first), generation
 * (observedGeneration), resourceVersion, deletionTimestamp.
 */
const KEPT_IDENTITY_METADATA: readonly string[] = [
  'name',
  'namespace',
  'uid',
  'creationTimestamp',
  'generation',
  'resourceVersion',
  'deletionTimestamp',
];
/** The only annotation the operator reads on an identity (svidctl renew). */
const KEPT_IDENTITY_ANNOTATIONS: readonly string[] = [ANNOTATION_RENEW_REQUEST];

/**
 * What the identity cache keeps of the metadata: only what decisions read (KEPT_IDENTITY_METADATA and the
 * renew-request annotation). managedFields, kubectl's last-applied copy, labels, other annotations,
 * finalizers and owner references stay with the API server: the operator writes an identity only by a merge
 * patch of its status, so nothing is lost by not holding them, and a user who pads an identity's metadata
 * (up to the API server's limits) cannot make the operator hold it. The metadata is rebuilt, not deleted
 * from (a delete leaves a slow dictionary-mode object; see managed-fields.ts).
 */
export function slimIdentity<T extends { metadata: { annotations?: Record<string, string> } }>(wi: T): T {
  withoutManagedFields(wi);
  const from = wi.metadata as Record<string, unknown>;
  const kept: Record<string, unknown> = {};
  for (const key of KEPT_IDENTITY_METADATA) if (from[key] !== undefined) kept[key] = from[key];
  const annotations = wi.metadata.annotations;
  if (annotations && typeof annotations === 'object') {
    const pickedAnnotations: Record<string, string> = {};
    let any = false;
    for (const key of KEPT_IDENTITY_ANNOTATIONS) {
      const value = annotations[key];
      if (value !== undefined) {
        pickedAnnotations[key] = value;
        any = true;
      }
    }
    if (any) kept.annotations = pickedAnnotations;
  }
  wi.metadata = kept as T['metadata'];
  return wi;
}
