// Drives the CA rotation (rotation/phases.ts) against the API: keeps its state in the `<ca>-rotation`
// Secret (rotation/record.ts), persists every new state before acting on it, and tells the controller which
// CA signs and which bundle every Secret gets. A restart or a new leader reads the state back and continues.
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { paths, type KubeClient } from '../../kube/client.ts';
import { isNotFound, isStatus } from '../../kube/errors.ts';
import { loadCa, type CaMaterial, type LoadedCa } from '../../pki/index.ts';
import { pemOf } from '../../pki/x509.ts';
import {
  advance,
  caChanged,
  initialState,
  signsWithPrevious,
  type RotationFacts,
  type RotationState,
} from '../../rotation/phases.ts';
import {
  parseState,
  PHASE_LABEL,
  RETAINED_KEY,
  rotationSecretName,
  serializeState,
  SIGNING_BUNDLE_KEY,
  SIGNING_CERT_KEY,
  SIGNING_KEY_KEY,
  SIGNING_ROOTS_KEY,
  STATE_ANNOTATION,
} from '../../rotation/record.ts';
import {
  ANNOTATION_CA,
  ANNOTATION_NOT_AFTER,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  type WorkloadIdentity,
} from './types.ts';

export interface RotationLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

export interface RotationDeps {
  kc: KubeClient;
  caSecret: { namespace: string; name: string };
  extraRootsPem?: string;
  /** --trust-domain: a CA whose SPIFFE ID names another trust domain is refused (pki loadCa). */
  trustDomain?: string;
  propagationDelayMs: number;
  /** See ControllerOptions.untrackedLifetimeMs: pod certificates the old CA signed before the switch. */
  untrackedLifetimeMs?: number;
  /** Managed Secrets and identities, as cached. */
  secrets: { get(key: string): k8s.V1Secret | undefined };
  identities: { keys(): string[]; get(key: string): WorkloadIdentity | undefined };
  /**
   * Whether those caches hold everything (listed once): before that, "no old SVID left" only means "none
   * seen yet", and a phase must not advance on it.
   */
  synced: () => boolean;
  log: RotationLogger;
  now?: () => Date;
}

/** The CA that signs, carrying the whole trust bundle every Secret gets now. */
export type SigningCa = LoadedCa;

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Concatenated roots, parsed, de-duplicated by fingerprint, in the order given (pemOf, like loadCa's). */
export function bundleOf(...pems: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of pems) {
    for (const block of pem.match(CERT_BLOCK) ?? []) {
      const cert = new X509Certificate(block);
      if (seen.has(cert.fingerprint256)) continue;
      seen.add(cert.fingerprint256);
      out.push(pemOf(cert));
    }
  }
  return out.join('');
}

/**
 * Counts, over the Secrets of identities that are Ready (an identity the operator cannot serve, e.g. a
 * policy violation, must not hold a rotation up forever), which hold the current bundle and which hold an
 * SVID of another CA than the signing one (by the CA fingerprint annotation the operator writes).
 */
export function rotationFacts(
  identities: RotationDeps['identities'],
  secrets: RotationDeps['secrets'],
  bundleBase64: string,
  signing: string,
): RotationFacts {
  const facts: RotationFacts = { secrets: 0, withCurrentBundle: 0, oldSigned: 0 };
  let until = 0;
  for (const key of identities.keys()) {
    const wi = identities.get(key);
    if (!wi || wi.metadata.deletionTimestamp) continue;
    const ready = wi.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    if (!ready) continue;
    const secret = secrets.get(`${wi.metadata.namespace}/${wi.spec.secretName}`);
    if (!secret) continue;
    facts.secrets++;
    if (secret.data?.['ca.crt'] === bundleBase64) facts.withCurrentBundle++;
    const annotations = secret.metadata?.annotations ?? {};
    if (annotations[ANNOTATION_CA] !== signing) {
      facts.oldSigned++;
      const notAfter = Date.parse(annotations[ANNOTATION_NOT_AFTER] ?? '');
      if (Number.isFinite(notAfter)) until = Math.max(until, notAfter);
    }
  }
  if (until > 0) facts.oldSignedUntil = new Date(until);
  return facts;
}

/**
 * Certificates no Secret shows (pod certificates, kept only by the kubelets) that the old CA signed before
 * the switch expire at the latest `untrackedLifetimeMs` after it: once Switching, count that instant among
 * the old SVIDs' expiries, so the old root outlives them too.
 */
export function withUntracked(
  facts: RotationFacts,
  state: RotationState,
  untrackedLifetimeMs: number,
): RotationFacts {
  if (untrackedLifetimeMs <= 0 || state.phase !== 'Switching') return facts;
  const until = Date.parse(state.since) + untrackedLifetimeMs;
  if (facts.oldSignedUntil && facts.oldSignedUntil.getTime() >= until) return facts;
  return { ...facts, oldSignedUntil: new Date(until) };
}

const TICK_MS = 1000;

export class CaRotation {
  private readonly d: RotationDeps;
  private readonly core: KubeClient;
  private readonly stateName: string;
  private state?: RotationState;
  private resourceVersion?: string;
  /** The CA in the CA Secret (the target) and, while Preparing, the previous CA that still signs. */
  private target?: { ca: LoadedCa; material: CaMaterial; roots: string };
  private previous?: { material: CaMaterial; roots: string };
  private signing?: SigningCa;
  /** The signing CA's roots as kept in the state Secret. */
  private storedRoots = '';
  private timer?: NodeJS.Timeout;
  private busy = false;
  private stopped = false;
  /** Called whenever the signing CA or the bundle changes. */
  onChange: () => void = () => undefined;

  constructor(d: RotationDeps) {
    this.d = d;
    this.core = d.kc;
    this.stateName = rotationSecretName(d.caSecret.name);
  }

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  get phase(): string | undefined {
    return this.state?.phase;
  }

  /** What signs now, with the bundle every Secret must hold; undefined before a CA ever loaded. */
  current(): SigningCa | undefined {
    return this.signing;
  }

  /** The CA Secret loaded (validated) with this material: start or continue a rotation as needed. */
  async caLoaded(material: CaMaterial): Promise<void> {
    const own = await loadCa(material, { trustDomain: this.d.trustDomain });
    const roots = own.trustBundlePem;
    const previousTarget = this.target;
    this.target = { ca: own, material, roots };
    if (!this.state) await this.readState(own.fingerprint, roots);
    const state = this.state as RotationState;
    if (state.target !== own.fingerprint) {
      // The CA that signs now keeps signing while the new roots reach every bundle: keep it (its key too)
      // in the state Secret first, so a restart continues with it.
      // Preparing: the previous CA still signs. Otherwise the CA that was the target signs; its material is
      // known when this process loaded it, its roots always (kept in the state Secret).
      const known = previousTarget?.ca.fingerprint === state.signing ? previousTarget : undefined;
      const signingMaterial = state.phase === 'Preparing' ? this.previous?.material : known?.material;
      const signingRoots =
        (state.phase === 'Preparing' ? this.previous?.roots : known?.roots) ?? this.storedRoots;
      const next = caChanged(state, own.fingerprint, signingRoots, roots, this.now());
      const keep =
        signsWithPrevious(next) && signingMaterial
          ? { material: signingMaterial, roots: signingRoots }
          : undefined;
      if (signsWithPrevious(next) && !keep) {
        this.d.log.warn(
          'the previous CA is not known (the CA Secret changed while no operator ran): its roots stay in the bundles, but new SVIDs are signed by the new CA at once',
          { previous: state.signing, current: own.fingerprint },
        );
      }
      await this.persist(next, keep, signingRoots);
      this.previous = keep;
      this.d.log.info('CA rotation: phase Preparing, bundles get the new roots while the previous CA signs', {
        previous: state.signing,
        current: own.fingerprint,
        propagationDelayMs: this.d.propagationDelayMs,
      });
    }
    await this.rebuild();
    this.schedule();
  }

  /** Every second while a rotation runs: advance it when the caches say so. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped || !this.state || this.state.phase === 'Stable') return;
    this.timer = setTimeout(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.busy || !this.state || !this.signing || !this.d.synced()) return this.schedule();
    this.busy = true;
    try {
      const bundle = Buffer.from(this.signing.trustBundlePem).toString('base64');
      const facts = withUntracked(
        rotationFacts(this.d.identities, this.d.secrets, bundle, this.state.signing),
        this.state,
        this.d.untrackedLifetimeMs ?? 0,
      );
      const next = advance(this.state, facts, this.now(), this.d.propagationDelayMs);
      if (next !== this.state) {
        const phaseChanged = next.phase !== this.state.phase;
        const withPrevious = signsWithPrevious(next);
        await this.persist(
          next,
          withPrevious ? this.previous : undefined,
          (withPrevious ? this.previous?.roots : this.target?.roots) ?? this.storedRoots,
        );
        if (phaseChanged) {
          this.d.log.info(`CA rotation: phase ${next.phase}`, {
            signing: next.signing,
            ...(next.retireAt ? { retireAt: next.retireAt } : {}),
            ...facts,
          });
          if (!signsWithPrevious(next)) this.previous = undefined;
          await this.rebuild();
        }
      }
    } catch (err) {
      this.d.log.warn('CA rotation: could not advance; retrying', { error: (err as Error).message });
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  /** Recomputes the signing CA and bundle from the state, and tells the controller when they changed. */
  private async rebuild(): Promise<void> {
    const state = this.state;
    const target = this.target;
    if (!state || !target) return;
    const extra = this.d.extraRootsPem ?? '';
    const bundle = bundleOf(target.roots, state.retainedRootsPem, extra);
    const signer =
      this.previous && signsWithPrevious(state)
        ? await loadCa(this.previous.material, { trustDomain: this.d.trustDomain })
        : target.ca;
    const next: SigningCa = { ...signer, trustBundlePem: bundle };
    const before = this.signing;
    this.signing = next;
    if (!before || before.fingerprint !== next.fingerprint || before.trustBundlePem !== next.trustBundlePem) {
      this.onChange();
    }
  }

  private async readState(fingerprint: string, roots: string): Promise<void> {
    const { namespace } = this.d.caSecret;
    let secret: k8s.V1Secret | undefined;
    try {
      secret = await this.core.get<k8s.V1Secret>(paths.secret(namespace, this.stateName));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const text = (k: string) =>
      secret?.data?.[k] ? Buffer.from(secret.data[k], 'base64').toString('utf8') : '';
    const json = secret?.metadata?.annotations?.[STATE_ANNOTATION];
    if (secret && json) {
      try {
        this.state = parseState(json, text(RETAINED_KEY));
        this.resourceVersion = secret.metadata?.resourceVersion;
        if (signsWithPrevious(this.state) && text(SIGNING_CERT_KEY) && text(SIGNING_KEY_KEY)) {
          const previousMaterial = {
            certPem: text(SIGNING_CERT_KEY),
            keyPem: text(SIGNING_KEY_KEY),
            bundlePem: text(SIGNING_BUNDLE_KEY) || undefined,
          };
          const loaded = await loadCa(previousMaterial, { trustDomain: this.d.trustDomain }).catch(
            () => undefined,
          );
          if (loaded?.fingerprint === this.state.signing) {
            this.previous = { material: previousMaterial, roots: loaded.trustBundlePem };
          }
        }
        this.storedRoots = text(SIGNING_ROOTS_KEY);
        this.d.log.info('CA rotation state read', { phase: this.state.phase, signing: this.state.signing });
        return;
      } catch (err) {
        this.d.log.warn(
          `the CA rotation state in ${namespace}/${this.stateName} is unreadable; starting from the current CA`,
          {
            why: (err as Error).message,
          },
        );
        this.resourceVersion = secret.metadata?.resourceVersion;
      }
    } else if (secret) this.resourceVersion = secret.metadata?.resourceVersion;
    // Never rotated (or an operator version without phases): the CA in the Secret signs.
    await this.persist(initialState(fingerprint, this.now()), undefined, roots);
  }

  /** Writes the state (with a resourceVersion precondition), then adopts it. */
  private async persist(
    next: RotationState,
    previous: { material: CaMaterial; roots: string } | undefined,
    signingRoots: string,
  ): Promise<void> {
    const { namespace } = this.d.caSecret;
    const data: Record<string, string> = {};
    const put = (k: string, v: string | undefined) => {
      if (v) data[k] = Buffer.from(v).toString('base64');
    };
    put(RETAINED_KEY, next.retainedRootsPem);
    put(SIGNING_ROOTS_KEY, previous?.roots ?? signingRoots);
    if (previous) {
      put(SIGNING_CERT_KEY, previous.material.certPem);
      put(SIGNING_KEY_KEY, previous.material.keyPem);
      put(SIGNING_BUNDLE_KEY, previous.material.bundlePem);
    }
    const body: k8s.V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: this.stateName,
        namespace,
        resourceVersion: this.resourceVersion,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [PHASE_LABEL]: next.phase },
        annotations: { [STATE_ANNOTATION]: serializeState(next) },
      },
      data,
    };
    const write = () =>
      this.resourceVersion
        ? this.core.replace<k8s.V1Secret>(paths.secret(namespace, this.stateName), body)
        : this.core.create<k8s.V1Secret>(paths.secrets(namespace), body);
    let written: k8s.V1Secret;
    try {
      written = await write();
    } catch (err) {
      // Only the leader writes this Secret, so its own state is the truth: someone edited (409) or deleted
      // (404) it, or it was created meanwhile (409 on create); write again over what is there now.
      if (!isStatus(err, 409, 404)) throw err;
      const current = await this.core
        .get<k8s.V1Secret>(paths.secret(namespace, this.stateName))
        .catch((e: unknown) => {
          if (isNotFound(e)) return undefined;
          throw e;
        });
      this.resourceVersion = current?.metadata?.resourceVersion;
      body.metadata = { ...body.metadata, resourceVersion: this.resourceVersion };
      this.d.log.warn(
        'the CA rotation state Secret was changed by someone else; writing the operator state again',
        {
          secret: `${namespace}/${this.stateName}`,
        },
      );
      written = await write();
    }
    this.resourceVersion = written.metadata?.resourceVersion;
    this.storedRoots = previous?.roots ?? signingRoots;
    this.state = next;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
