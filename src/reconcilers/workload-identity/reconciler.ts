// The reconcile loop's body: read the WorkloadIdentity and its Secret, decide with plan(), and make the
// API match: at most one Secret write and one status write per issuance, none when nothing changed.
import type * as k8s from '@kubernetes/client-node';
import { issuedSvidFacts, issueSvid, type IssuedSvid, type LoadedCa } from '../../pki/index.ts';
import { earliestRenewal, pacingDeadline, renewalTime } from '../../renewal/index.ts';
import type { EventRecorder } from './events.ts';
import { ownershipDecision } from './ownership.ts';
import type { SecretClaims } from './secret-claims.ts';
import {
  dropSvidData,
  droppedSvidContent,
  SVID_DATA_KEYS,
  withOnlyDecisionMetadata,
  withOnlySvidData,
} from './slim.ts';
import { WriteMemory, type Seen } from '../../controller-runtime/write-memory.ts';
import type { Meta } from '../../controller-runtime/informer.ts';
import { paths, type KubeClient } from '../../kube/client.ts';
import { isConflict, isNotFound, KubeApiError } from '../../kube/errors.ts';
import type { RateLimiter } from '../../controller-runtime/limiter.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { Pacer } from '../../controller-runtime/pacer.ts';
import {
  earlyRenewalMessage,
  isPaced,
  plan,
  retryDelayMs,
  retryWithinMs,
  scheduledRenewal,
  type CaState,
  type IdentityPolicy,
  type Plan,
  type SecretState,
} from './plan.ts';
import { FailedAfterProgress, RetryWithin, type HandlerResult } from '../../controller-runtime/queue.ts';
import { handledRenewRequest } from './renew-request.ts';
import { buildSecret, secretPatch, secretState, svidData } from './secret.ts';
import { SvidMemory, svidContent } from './svid-memory.ts';
import { readyCondition, rfc3339, statusEqual } from './status.ts';
import { GROUP, PLURAL, VERSION, type WorkloadIdentity, type WorkloadIdentityStatus } from './types.ts';

export interface ReconcileLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export interface Lookup<T> {
  get(key: string): T | undefined;
}

export interface ReconcilerDeps {
  kc: KubeClient;
  policy: IdentityPolicy;
  identities: Lookup<WorkloadIdentity>;
  secrets: Lookup<k8s.V1Secret>;
  ca: () => CaState;
  /** The operator's CA Secret: no identity may target it. */
  caSecret: { namespace: string; name: string };
  /** Which identities name which Secret (the oldest wins). */
  claims: SecretClaims;
  events: EventRecorder;
  /** Paces re-issuance of still-valid SVIDs (see pacer.ts): it re-queues a key when its turn comes. */
  pacer: Pacer<string>;
  apiLimiter: RateLimiter;
  metrics: ControllerMetrics;
  log: ReconcileLogger;
  now?: () => Date;
  /**
   * A watch event held while this process's own write of the object was in flight turned out not to be
   * that write's echo (write-memory.ts): handle it as a change seen now.
   */
  changed?: {
    secret(secret: k8s.V1Secret): void;
    identity(wi: WorkloadIdentity): void;
  };
}

/** A foreign Secret is not watched (it lacks our label), so a conflict is re-checked on this period. */
const CONFLICT_RECHECK_MS = 60_000;

export class Reconciler {
  private readonly d: ReconcilerDeps;
  /** Every read and write (Secrets, status): plain JSON requests (kube/client.ts). */
  private readonly json: KubeClient;
  // The operator's own latest writes, newer than the caches until the watch catches up (write-memory.ts).
  private readonly writtenSecrets: WriteMemory<k8s.V1Secret>;
  private readonly writtenIdentities: WriteMemory<WorkloadIdentity>;
  /** The facts of each managed Secret's SVID, so neither own writes nor unchanged Secrets are parsed again. */
  private readonly svids = new SvidMemory();
  private readonly failures = new Map<string, number>();
  /**
   * After a failed issuance: not before this instant, for this generation and CA. The failure's own status
   * write comes back as a watch event and queues the identity at once; without this gate that event, not
   * the backoff, would set the retry pace (the real-node e2e saw ~10 attempts a second on a 403).
   */
  private readonly retryGate = new Map<string, { at: number; generation?: number; ca: string }>();
  // Secrets whose name a create found taken although the cache does not hold them: read before deciding.
  private readonly mustRead = new Set<string>();

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.json = deps.kc;
    this.writtenSecrets = new WriteMemory(deps.secrets, undefined, (_key, secret) =>
      deps.changed?.secret(secret),
    );
    this.writtenIdentities = new WriteMemory(deps.identities, undefined, (_key, wi) =>
      deps.changed?.identity(wi),
    );
  }

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  /** Called when an identity is deleted: its Secret is left to garbage collection via the ownerReference. */
  forget(key: string): void {
    this.d.pacer.cancel(key);
    this.writtenIdentities.forget(key);
    this.failures.delete(key);
    this.retryGate.delete(key);
  }

  /** The watch delivered an identity's deletion: no remembered status write may bring it back. */
  identityDeleted(wi: WorkloadIdentity): void {
    const key = `${wi.metadata.namespace}/${wi.metadata.name}`;
    this.writtenIdentities.deleted(key, wi);
    this.forget(key);
  }

  /** The watch delivered a managed Secret's deletion: no remembered write may answer for it again. */
  secretDeleted(secret: k8s.V1Secret): void {
    const key = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
    this.writtenSecrets.deleted(key, secret);
    this.svids.forget(key);
  }

  /**
   * The watch delivered a managed Secret: a remembered write it has caught up with is dropped. 'echo' when
   * it is this process's own write (nothing new to reconcile), 'held' while a write of it is in flight (it
   * comes back through `changed` if it is not that write's echo), else 'change'.
   */
  secretSeen(secret: k8s.V1Secret): Seen {
    const key = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
    const seen = this.writtenSecrets.seen(key, secret);
    // No reconcile reads an echo, so none would drop its tls.crt and tls.key from the cached copy.
    if (seen === 'echo') this.dropKnownSvidData(key, secret);
    return seen;
  }

  /**
   * Drops tls.crt and tls.key from a cached Secret when the facts of exactly that content are remembered for
   * the current CA (this process wrote it, or judged it before): ~1.4 KB per identity that the echo of the
   * operator's own write would otherwise keep in the cache, since no reconcile reads an echo. Content that
   * is not known stays, to be inspected by the next reconcile.
   */
  private dropKnownSvidData(secretKey: string, secret: k8s.V1Secret | undefined): void {
    const ca = this.d.ca();
    if (!secret?.data || !ca.ok || droppedSvidContent(secret) !== undefined) return;
    const content = svidContent(secret.data);
    if (this.svids.known(secretKey, content, ca.ca)) dropSvidData(secret, content);
  }

  /** The newest known version of an identity: the cached one, or this process's own later status write. */
  identity(key: string): WorkloadIdentity | undefined {
    return this.writtenIdentities.get(key);
  }

  /** The watch delivered an identity: as secretSeen, for the remembered status writes. */
  identitySeen(wi: WorkloadIdentity): Seen {
    return this.writtenIdentities.seen(`${wi.metadata.namespace}/${wi.metadata.name}`, wi);
  }

  async reconcile(key: string): Promise<HandlerResult> {
    const wi = this.writtenIdentities.get(key);
    if (!wi || wi.metadata.deletionTimestamp) {
      this.forget(key);
      return;
    }
    const secretKey = `${wi.metadata.namespace}/${wi.spec.secretName}`;
    const ca = this.d.ca();
    const secret = await this.withSvidData(secretKey, wi, await this.readSecret(secretKey, wi), ca);
    const now = this.now();
    const own = ownershipDecision({ wi, secret, caSecret: this.d.caSecret, claims: this.d.claims });
    // A Secret to take over is planned as if absent (its SVID is another identity's), then updated in place.
    const state: SecretState =
      own.kind === 'rewrite' && own.cause === 'OwnerChanged'
        ? { kind: 'absent' as const }
        : secretState(secret, wi);
    if (state.kind === 'owned' && ca.ok && secret) {
      const dropped = droppedSvidContent(secret);
      if (dropped !== undefined) state.facts = this.svids.known(secretKey, dropped, ca.ca);
      else {
        state.facts = this.svids.facts(secretKey, secret.data, state.svid, ca.ca);
        // Known now: the cached copy need not hold tls.crt and tls.key any longer (slim.ts).
        if (state.facts) dropSvidData(secret, svidContent(secret.data));
      }
    }
    let p = plan(wi, this.d.policy, ca, state, now);
    // A spec that can never be issued is reported as such first: the user has to fix it either way.
    const specProblem = p.action === 'fail' && (p.reason === 'InvalidSpec' || p.reason === 'PolicyViolation');
    if (own.kind === 'conflict' && !specProblem) {
      const spiffeId = p.action === 'fail' ? p.spiffeId : p.desired.spiffeId;
      p = { action: 'fail', reason: 'SecretConflict', message: own.message, spiffeId };
    } else if (own.kind === 'rewrite' && p.action !== 'fail') {
      p = { action: 'issue', desired: p.desired, cause: own.cause, message: own.message, create: false };
    }
    switch (p.action) {
      case 'fail':
        return this.reportFailure(wi, p);
      case 'rebundle':
        return this.rebundle(wi, p, secret as k8s.V1Secret, secretKey);
      case 'keep': {
        this.failures.delete(key);
        const status = this.readyStatus(
          wi,
          p,
          p.serialNumber,
          p.notBefore,
          p.notAfter,
          p.renewalTime,
          'Issued',
        );
        // The next look is when the renewal may first be taken early (plan.ts earlyFrom), else when it is due.
        const next = p.earlyFrom ?? p.renewalTime;
        if (!statusEqual(wi.status, status)) {
          this.d.pacer.cancel(key);
          // A status to bring up to date (after a restart, a spec change that kept the SVID): in a write slot.
          return {
            writes: async () => {
              await this.writeStatus(wi, status);
              return { requeueAfterMs: next.getTime() - this.now().getTime() };
            },
          };
        }
        if (now < next) {
          this.d.pacer.cancel(key);
          return { requeueAfterMs: next.getTime() - now.getTime() };
        }
        // Inside the look-ahead window: the pacer holds the key (no timer of the work queue's meanwhile) and
        // hands it back early if the rate has room that later would be short, or once it is due. Once due it
        // waits in renewal-time order (pacingDeadline, as admitted() queues it): the most overdue goes first.
        if (!this.d.pacer.ahead(key, wi.metadata.namespace, p.renewalTime.getTime(), p.renewalTime.getTime()))
          return;
        const early: Extract<Plan, { action: 'issue' }> = {
          action: 'issue',
          desired: p.desired,
          cause: 'RenewedEarly',
          message: earlyRenewalMessage(p.renewalTime, now),
          create: false,
        };
        return this.issue(wi, early, secret, secretKey, true);
      }
      case 'issue':
        return this.issue(wi, p, secret, secretKey);
    }
  }

  /**
   * The Secret with its tls.crt and tls.key when the cache dropped them and their facts are not known for
   * the current CA (it changed since they were judged): read again from the API server, once per CA change.
   */
  private async withSvidData(
    secretKey: string,
    wi: WorkloadIdentity,
    secret: k8s.V1Secret | undefined,
    ca: CaState,
  ): Promise<k8s.V1Secret | undefined> {
    const dropped = secret && droppedSvidContent(secret);
    if (dropped === undefined || !ca.ok || this.svids.known(secretKey, dropped, ca.ca)) return secret;
    await this.d.apiLimiter.take();
    try {
      const read = await this.json.get<k8s.V1Secret>(paths.secret(wi.metadata.namespace, wi.spec.secretName));
      return withOnlySvidData(withOnlyDecisionMetadata(read));
    } catch (err) {
      // Deleted since: the watch delivers the deletion, and the Secret is planned as absent meanwhile.
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async readSecret(secretKey: string, wi: WorkloadIdentity): Promise<k8s.V1Secret | undefined> {
    const cached = this.writtenSecrets.get(secretKey);
    if (cached) return cached;
    // Not among the Secrets the operator manages. One with this name may still exist and belong to someone
    // else, but a create never replaces anything, so it is read only after a create found the name taken:
    // a first issuance costs no read.
    if (!this.mustRead.has(secretKey)) return undefined;
    await this.d.apiLimiter.take();
    try {
      return await this.json.get<k8s.V1Secret>(paths.secret(wi.metadata.namespace, wi.spec.secretName));
    } catch (err) {
      if (isNotFound(err)) {
        this.mustRead.delete(secretKey);
        return undefined;
      }
      throw err;
    }
  }

  private readyStatus(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'keep' | 'rebundle' | 'issue' }>,
    serialNumber: string,
    notBefore: Date,
    notAfter: Date,
    renewal: Date,
    reason: string,
    revision = wi.status?.revision ?? 1,
  ): WorkloadIdentityStatus {
    const old = wi.status ?? {};
    const condition = old.conditions?.find((c) => c.type === 'Ready');
    // A kept SVID keeps the reason and message it was issued with, so a restart writes nothing.
    const keepMessage = p.action !== 'issue' && condition?.status === 'True';
    return {
      spiffeID: p.desired.spiffeId,
      serialNumber,
      notBefore: rfc3339(notBefore),
      notAfter: rfc3339(notAfter),
      renewalTime: rfc3339(renewal),
      revision,
      observedGeneration: wi.metadata.generation,
      failedIssuanceAttempts: 0,
      lastFailureTime: old.lastFailureTime,
      // An issuance answers any pending renew request (svidctl renew); a kept SVID keeps the record.
      lastRenewRequest: p.action === 'issue' ? handledRenewRequest(wi) : old.lastRenewRequest,
      conditions: readyCondition(
        old.conditions,
        'True',
        keepMessage ? condition.reason : reason,
        keepMessage
          ? condition.message
          : `SVID ${serialNumber} valid until ${rfc3339(notAfter)}, renewal at ${rfc3339(renewal)}${p.desired.adjusted ? `; ${p.desired.adjusted}` : ''}`,
        wi.metadata.generation,
        this.now(),
      ),
    };
  }

  private async issue(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'issue' }>,
    existing: k8s.V1Secret | undefined,
    secretKey: string,
    /** The pacer already granted it (an early renewal's turn). */
    granted = false,
  ): Promise<HandlerResult> {
    const key = `${wi.metadata.namespace}/${wi.metadata.name}`;
    const state = this.d.ca();
    if (!state.ok) return;
    const current = wi.status?.notAfter ? new Date(wi.status.notAfter) : undefined;
    const gate = this.retryGate.get(key);
    if (gate && gate.generation === wi.metadata.generation && gate.ca === state.ca.fingerprint) {
      const wait = gate.at - this.now().getTime();
      if (wait > 0) return { requeueAfterMs: wait };
    }
    if (!granted && !this.admitted(wi, p.cause, current, p.desired.renewBeforeSeconds)) return;
    const started = performance.now();
    let svid: IssuedSvid;
    try {
      svid = await issueSvid(state.ca, {
        spiffeId: p.desired.spiffeId,
        dnsNames: p.desired.dnsNames,
        durationSeconds: p.desired.durationSeconds,
        key: p.desired.key,
        now: this.now(),
      });
    } catch (err) {
      return this.issuanceFailed(wi, p, started, err);
    }
    // Decided and signed: the Secret and status writes run in a write slot, not in this reconcile's
    // (queue.ts), so the slot is not held for their two round trips.
    return { writes: () => this.writeIssued(wi, p, existing, secretKey, state.ca, svid, started) };
  }

  private issuanceFailed(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'issue' }>,
    started: number,
    err: unknown,
  ): Promise<HandlerResult> {
    this.d.metrics.issuances.inc({ result: 'failure', cause: p.cause });
    this.d.metrics.issuanceSeconds.observe({ result: 'failure' }, (performance.now() - started) / 1000);
    return this.reportIssuanceFailure(wi, err);
  }

  /** Writes a newly issued SVID: its Secret, then the identity's status (which says what the Secret holds). */
  private async writeIssued(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'issue' }>,
    existing: k8s.V1Secret | undefined,
    secretKey: string,
    ca: LoadedCa,
    svid: IssuedSvid,
    started: number,
  ): Promise<HandlerResult> {
    const key = `${wi.metadata.namespace}/${wi.metadata.name}`;
    try {
      // What was sent, not the answer: if the stored data differs, its digest does and it is inspected.
      const sent = svidData(svid);
      // The copy kept until the watch catches up holds no SVID data unless the answer differs from what was
      // sent.
      const keep = (answer: k8s.V1Secret) => {
        const kept = withOnlySvidData(answer);
        const content = svidContent(kept.data);
        if (content === svidContent(sent)) dropSvidData(kept, content);
        return kept;
      };
      if (p.create)
        await this.createSecret(wi, secretKey, buildSecret(wi, svid, ca.fingerprint, undefined), keep);
      else await this.patchSecret(wi, secretKey, svid, ca.fingerprint, existing, p.cause, keep);
      this.d.metrics.apiWrites.inc({ kind: 'secret' });
      this.svids.wrote(secretKey, sent, ca, issuedSvidFacts(svid, p.desired.dnsNames, p.desired.key));
      // The watch may have delivered this write's echo before its answer (held, then dropped as the echo
      // without a reconcile): the cached copy need not keep the SVID data either.
      this.dropKnownSvidData(secretKey, this.d.secrets.get(secretKey));
    } catch (err) {
      const conflict = isConflict(err);
      if (conflict && p.create) {
        // The name is taken by a Secret the cache does not hold (someone else's, or ours not yet seen):
        // read it and decide again, at once.
        this.mustRead.add(secretKey);
        return { requeueAfterMs: 0 };
      }
      // A 409 means the Secret changed under us: the next attempt re-reads it.
      if (conflict) {
        this.d.metrics.issuances.inc({ result: 'failure', cause: p.cause });
        this.d.metrics.issuanceSeconds.observe({ result: 'failure' }, (performance.now() - started) / 1000);
        this.writtenSecrets.forget(secretKey);
        const message = `Secret ${secretKey} changed while it was being written; retrying`;
        // Retried before the SVID in use expires, however many conflicts came before.
        const within = retryWithinMs(
          wi.status?.notAfter ? new Date(wi.status.notAfter) : undefined,
          this.now(),
        );
        if (within !== undefined) throw new RetryWithin(message, within, { cause: err });
        throw new Error(message, { cause: err });
      }
      return this.issuanceFailed(wi, p, started, err);
    }
    this.failures.delete(key);
    this.retryGate.delete(key);
    this.d.metrics.issuances.inc({ result: 'success', cause: p.cause });
    this.d.metrics.issuanceSeconds.observe({ result: 'success' }, (performance.now() - started) / 1000);
    const first = !wi.status?.serialNumber;
    // The same formula verifySvid applies on the next reconcile, so the written renewalTime matches it.
    const renewal = scheduledRenewal(
      renewalTime(svid.notAfter, p.desired.renewBeforeSeconds, wi.metadata.uid),
      svid.notAfter,
      svid.clampedToCa,
      this.now(),
    );
    const reason = first ? 'Issued' : 'Renewed';
    const status = this.readyStatus(
      wi,
      p,
      svid.serialNumber,
      svid.notBefore,
      svid.notAfter,
      renewal,
      reason,
      (wi.status?.revision ?? 0) + 1,
    );
    const readyCond = status.conditions?.find((c) => c.type === 'Ready');
    if (readyCond && svid.clampedToCa) {
      readyCond.message += `; the lifetime was cut to the CA's expiry (${rfc3339(ca.notAfter)}): rotate the CA`;
    }
    await this.writeStatusAfterSecret(wi, status, secretKey, `SVID ${svid.serialNumber}`);
    this.d.log.info(`${reason.toLowerCase()} SVID`, {
      identity: key,
      spiffeID: svid.spiffeId,
      serial: svid.serialNumber,
      notAfter: rfc3339(svid.notAfter),
      cause: p.cause,
      why: p.message,
    });
    this.d.events.record(
      wi,
      'Normal',
      reason,
      `${reason} SVID ${svid.serialNumber} for ${svid.spiffeId}, valid until ${rfc3339(svid.notAfter)} (${p.message})`,
    );
    // Looked at again from when its renewal may be taken early (the keep plan hands it to the pacer then);
    // an SVID cut to the CA's expiry is not renewed early, so it is looked at when it is due.
    const next = svid.clampedToCa
      ? renewal
      : earliestRenewal(renewal, svid.notAfter, p.desired.durationSeconds, p.desired.renewBeforeSeconds);
    return { requeueAfterMs: next.getTime() - this.now().getTime() };
  }

  private async createSecret(
    wi: WorkloadIdentity,
    secretKey: string,
    body: k8s.V1Secret,
    keep: (answer: k8s.V1Secret) => k8s.V1Secret,
  ): Promise<k8s.V1Secret> {
    await this.d.apiLimiter.take();
    return this.send(
      this.writtenSecrets,
      secretKey,
      () =>
        this.timed('create', 'secret', () =>
          this.json.create<k8s.V1Secret>(paths.secrets(wi.metadata.namespace), body),
        ),
      keep,
    );
  }

  /**
   * Sends one write of `key`, marked in flight in `memory` until it answers, so that its watch echo is
   * recognised even when it arrives first (write-memory.ts); `keep(answer)` is what is remembered of it.
   */
  private async send<T extends Meta>(
    memory: WriteMemory<T>,
    key: string,
    request: () => Promise<T>,
    keep: (answer: T) => T = (answer) => answer,
  ): Promise<T> {
    memory.sending(key);
    let answer: T;
    try {
      answer = await request();
    } catch (err) {
      memory.failed(key);
      throw err;
    }
    memory.wrote(key, keep(answer));
    return answer;
  }

  /**
   * Updates an existing Secret with a patch of only the fields the operator owns, conditional on the
   * resourceVersion it was read at. A tampered Secret is read again first: the cache keeps no extra data
   * keys, so their names come from the API server, to be removed.
   */
  private async patchSecret(
    wi: WorkloadIdentity,
    secretKey: string,
    svid: IssuedSvid,
    caFingerprint: string,
    existing: k8s.V1Secret | undefined,
    cause: string,
    keep: (answer: k8s.V1Secret) => k8s.V1Secret,
  ): Promise<k8s.V1Secret> {
    let base = existing;
    if (cause === 'Tampered') {
      await this.d.apiLimiter.take();
      base = await this.json.get<k8s.V1Secret>(paths.secret(wi.metadata.namespace, wi.spec.secretName));
    }
    const controller = base?.metadata?.ownerReferences?.find((r) => r.controller);
    const body = secretPatch(wi, svid, caFingerprint, base?.metadata?.resourceVersion, {
      removeKeys: Object.keys(base?.data ?? {}).filter((k) => !SVID_DATA_KEYS.includes(k)),
      previousController: controller?.uid,
    });
    await this.d.apiLimiter.take();
    return this.send(
      this.writtenSecrets,
      secretKey,
      () =>
        this.timed('patch', 'secret', () =>
          this.json.patch<k8s.V1Secret>(
            paths.secret(wi.metadata.namespace, wi.spec.secretName),
            body,
            'strategic',
          ),
        ),
      keep,
    );
  }

  /**
   * Whether a re-issue may run now. A paced one that has no token yet waits in the pacer (deadline order:
   * the SVID's renewal time, pacingDeadline; round robin between namespaces) and this reconcile ends,
   * freeing the worker; the pacer queues the key again when its turn comes.
   */
  private admitted(
    wi: WorkloadIdentity,
    cause: string,
    notAfter: Date | undefined,
    renewBeforeSeconds: number,
  ): boolean {
    const key = `${wi.metadata.namespace}/${wi.metadata.name}`;
    if (!isPaced(cause, notAfter, this.now(), renewBeforeSeconds)) {
      this.d.pacer.cancel(key);
      return true;
    }
    const deadline = pacingDeadline(notAfter as Date, renewBeforeSeconds, wi.metadata.uid);
    return this.d.pacer.admit(key, wi.metadata.namespace, deadline);
  }

  /** Writes the current trust bundle into ca.crt and nothing else: same certificate, same key, no status. */
  private async rebundle(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'rebundle' }>,
    existing: k8s.V1Secret,
    secretKey: string,
  ): Promise<HandlerResult> {
    const state = this.d.ca();
    if (!state.ok) return;
    if (!this.admitted(wi, 'BundleChanged', p.notAfter, p.desired.renewBeforeSeconds)) return;
    // ca.crt alone, conditional on the version the decision was made from (a patch, like every write of a
    // managed Secret: other tools' metadata stays).
    const body = {
      metadata: { resourceVersion: existing.metadata?.resourceVersion },
      data: { 'ca.crt': Buffer.from(state.ca.trustBundlePem).toString('base64') },
    };
    // In a write slot, like an issuance's writes.
    return { writes: () => this.writeBundle(wi, p, body, secretKey) };
  }

  private async writeBundle(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'rebundle' }>,
    body: { metadata: { resourceVersion?: string }; data: Record<string, string> },
    secretKey: string,
  ): Promise<HandlerResult> {
    try {
      await this.d.apiLimiter.take();
      await this.send(
        this.writtenSecrets,
        secretKey,
        () =>
          this.timed('patch', 'secret', () =>
            this.json.patch<k8s.V1Secret>(
              paths.secret(wi.metadata.namespace, wi.spec.secretName),
              body,
              'strategic',
            ),
          ),
        withOnlySvidData,
      );
      this.d.metrics.apiWrites.inc({ kind: 'secret' });
    } catch (err) {
      if (isConflict(err)) {
        this.writtenSecrets.forget(secretKey);
        throw new Error(`Secret ${secretKey} changed while its bundle was being written; retrying`, {
          cause: err,
        });
      }
      throw err;
    }
    this.d.log.info('trust bundle updated', {
      identity: `${wi.metadata.namespace}/${wi.metadata.name}`,
      serial: p.serialNumber,
    });
    await this.writeStatusAfterSecret(
      wi,
      this.readyStatus(wi, p, p.serialNumber, p.notBefore, p.notAfter, p.renewalTime, 'Issued'),
      secretKey,
      'the new trust bundle',
    );
    return { requeueAfterMs: p.renewalTime.getTime() - this.now().getTime() };
  }

  private async reportFailure(
    wi: WorkloadIdentity,
    p: Extract<Plan, { action: 'fail' }>,
  ): Promise<HandlerResult> {
    const old = wi.status ?? {};
    const condition = old.conditions?.find((c) => c.type === 'Ready');
    const changed =
      condition?.status !== 'False' || condition.reason !== p.reason || condition.message !== p.message;
    const status: WorkloadIdentityStatus = {
      ...old,
      spiffeID: p.spiffeId ?? old.spiffeID,
      observedGeneration: wi.metadata.generation,
      conditions: readyCondition(
        old.conditions,
        'False',
        p.reason,
        p.message,
        wi.metadata.generation,
        this.now(),
      ),
    };
    await this.writeStatus(wi, status);
    if (changed) {
      this.d.log.warn('identity not ready', {
        identity: `${wi.metadata.namespace}/${wi.metadata.name}`,
        reason: p.reason,
        why: p.message,
      });
      this.d.events.record(wi, 'Warning', p.reason === 'IssuanceFailed' ? 'Failed' : p.reason, p.message);
    }
    // Spec and CA changes arrive as watch events; a foreign Secret does not, so it is polled.
    return p.reason === 'SecretConflict' ? { requeueAfterMs: CONFLICT_RECHECK_MS } : undefined;
  }

  private async reportIssuanceFailure(wi: WorkloadIdentity, err: unknown): Promise<HandlerResult> {
    const key = `${wi.metadata.namespace}/${wi.metadata.name}`;
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const now = this.now();
    const notAfter = wi.status?.notAfter ? new Date(wi.status.notAfter) : undefined;
    const stillValid = !!notAfter && notAfter > now;
    const message = `issuing the SVID failed (attempt ${failures}): ${describe(err)}`;
    const old = wi.status ?? {};
    const status: WorkloadIdentityStatus = {
      ...old,
      failedIssuanceAttempts: failures,
      lastFailureTime: rfc3339(now),
      conditions: readyCondition(
        old.conditions,
        stillValid ? 'True' : 'False',
        stillValid ? 'RenewalFailing' : 'IssuanceFailed',
        stillValid ? `${message}; the current SVID stays valid until ${old.notAfter}` : message,
        wi.metadata.generation,
        now,
      ),
    };
    this.d.log.error('issuance failed', { identity: key, attempt: failures, error: describe(err) });
    await this.writeStatus(wi, status).catch(() => undefined);
    this.d.events.record(wi, 'Warning', 'Failed', message);
    const delay = retryDelayMs(failures, notAfter, now);
    const ca = this.d.ca();
    if (ca.ok) {
      this.retryGate.set(key, {
        at: now.getTime() + delay,
        generation: wi.metadata.generation,
        ca: ca.ca.fingerprint,
      });
    }
    return { requeueAfterMs: delay };
  }

  /** One API request, its round trip observed by verb, resource and answer class. */
  private async timed<T>(verb: string, resource: string, request: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let code = '2xx';
    try {
      return await request();
    } catch (err) {
      code = codeClass(err);
      throw err;
    } finally {
      this.d.metrics.apiRequestSeconds.observe(
        { verb, resource, code },
        (performance.now() - started) / 1000,
      );
    }
  }

  /**
   * The status write that follows a Secret write: its failure is one after progress (queue.ts), so the
   * retry, which only has the status left to write, starts the backoff over.
   */
  private async writeStatusAfterSecret(
    wi: WorkloadIdentity,
    status: WorkloadIdentityStatus,
    secretKey: string,
    holds: string,
  ): Promise<void> {
    try {
      await this.writeStatus(wi, status);
    } catch (err) {
      throw new FailedAfterProgress(
        `Secret ${secretKey} holds ${holds}, but its status write failed (${describe(err)}); retrying`,
        { cause: err },
      );
    }
  }

  private async writeStatus(wi: WorkloadIdentity, status: WorkloadIdentityStatus): Promise<void> {
    if (statusEqual(wi.status, status)) return;
    await this.d.apiLimiter.take();
    await this.send(this.writtenIdentities, `${wi.metadata.namespace}/${wi.metadata.name}`, () =>
      this.timed('patch', 'status', () =>
        this.json.patch<WorkloadIdentity>(
          paths.customStatus(GROUP, VERSION, wi.metadata.namespace, PLURAL, wi.metadata.name),
          { status },
          'merge',
        ),
      ),
    );
    this.d.metrics.apiWrites.inc({ kind: 'status' });
  }
}

/** An API answer's code as a low-cardinality label: 2xx, 4xx, 5xx, or error (no answer). */
function codeClass(err: unknown): string {
  if (err instanceof KubeApiError) return `${Math.floor(err.code / 100)}xx`;
  return 'error';
}

/** An error as a status message: what failed, never a request body (which could hold key material). */
export function describe(err: unknown): string {
  if (err instanceof KubeApiError) {
    // A body that is not a Kubernetes Status: the code alone says enough.
    return `the API server answered ${err.code}: ${err.statusMessage || `HTTP ${err.code}`}`.slice(0, 500);
  }
  if (err instanceof Error) return err.message.slice(0, 500);
  return String(err).slice(0, 500);
}
