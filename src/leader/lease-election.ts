// Leader election on a coordination.k8s.io/v1 Lease, with the semantics of client-go's
// tools/leaderelection: a candidate judges expiry by its own monotonic clock from the moment it last saw
// the Lease's record change, never by comparing the record's timestamps with its clock, so clock skew
// between machines does not matter (only a difference in clock *rate* would).
//
// Safety margin: a leader steps down renewDeadline after it *sent* its last successful renewal. The
// record that renewal wrote can only have been seen by another candidate after that send, and that
// candidate then waits a full leaseDuration (> renewDeadline) before taking over, so the old leader has
// stopped before anyone else can start.
import { performance } from 'node:perf_hooks';
import type * as k8s from '@kubernetes/client-node';
import { paths, type KubeClient, type RequestOptions } from '../kube/client.ts';
import { isConflict, isNotFound, KubeApiError } from '../kube/errors.ts';
import { createLogger } from '../operator/logger.ts';

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/** client-go's JitterFactor: acquisition attempts are retryPeriod × (1 + random × 1.2) apart. */
export const JITTER_FACTOR = 1.2;

export interface Timings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** The Lease's spec as the election reads it; times are RFC 3339 strings as the API server returns them. */
export interface LeaderRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaderTransitions: number;
}

/** A record and the local monotonic time (ms) at which this candidate first saw it. */
export interface Observation {
  record: LeaderRecord;
  key: string;
  at: number;
}

export type Decision =
  | { action: 'create'; record: LeaderRecord }
  | { action: 'acquire'; record: LeaderRecord }
  | { action: 'renew'; record: LeaderRecord }
  | { action: 'wait'; holder: string; expiresInMs: number };

/** Refuses timings under which a leader could still be acting when a standby takes over. */
export function validateTimings(t: Timings): void {
  for (const [name, value] of Object.entries(t)) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be positive, got ${value}`);
  }
  // The Lease stores whole seconds; a fraction would be cut off and shorten what standbys wait.
  if (t.leaseDurationMs % 1000 !== 0) {
    throw new RangeError(`leaseDurationMs must be whole seconds, got ${t.leaseDurationMs}`);
  }
  if (t.leaseDurationMs <= t.renewDeadlineMs) {
    throw new RangeError(
      `leaseDurationMs (${t.leaseDurationMs}) must be greater than renewDeadlineMs (${t.renewDeadlineMs})`,
    );
  }
  if (t.renewDeadlineMs <= JITTER_FACTOR * t.retryPeriodMs) {
    throw new RangeError(
      `renewDeadlineMs (${t.renewDeadlineMs}) must be greater than ${JITTER_FACTOR} × retryPeriodMs (${t.retryPeriodMs})`,
    );
  }
}

function timeString(value: unknown): string | undefined {
  // The API hands MicroTime back as a string; a Date is accepted too.
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'string' ? value : undefined;
}

export function recordOf(lease: k8s.V1Lease): LeaderRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTime: timeString(spec.acquireTime),
    renewTime: timeString(spec.renewTime),
    leaderTransitions: spec.leaseTransitions ?? 0,
  };
}

/** Identity of a record's content; a renewal changes renewTime and so the key. */
export function recordKey(r: LeaderRecord): string {
  return JSON.stringify([
    r.holderIdentity,
    r.leaseDurationSeconds,
    r.acquireTime,
    r.renewTime,
    r.leaderTransitions,
  ]);
}

/** Keeps the earlier observation time while the record is unchanged; restarts it when it changes. */
export function observe(prev: Observation | undefined, record: LeaderRecord, now: number): Observation {
  const key = recordKey(record);
  if (prev && prev.key === key) return prev;
  return { record, key, at: now };
}

/** Milliseconds until the observed record expires by the local clock (≤ 0: expired). */
export function expiresInMs(obs: Observation, now: number): number {
  return obs.at + obs.record.leaseDurationSeconds * 1000 - now;
}

export interface DecisionInput {
  /** The record as last observed; after a 404, the one seen before the Lease went away, if any. */
  observed: Observation | undefined;
  /** False when the Lease was not found just now. */
  exists: boolean;
  identity: string;
  /** Local monotonic time in ms, the clock `observed.at` was taken with. */
  now: number;
  /** Only fills in renewTime and acquireTime. */
  wallClock: Date;
  leaseDurationMs: number;
}

/** What a candidate does next with the Lease, judged only by what it observed and when. */
export function decide(input: DecisionInput): Decision {
  const { observed, identity, now } = input;
  const time = input.wallClock.toISOString();
  const fresh: LeaderRecord = {
    holderIdentity: identity,
    leaseDurationSeconds: input.leaseDurationMs / 1000,
    acquireTime: time,
    renewTime: time,
    leaderTransitions: 0,
  };
  const old = observed?.record;
  const ours = old !== undefined && old.holderIdentity === identity;
  // Another holder's lease runs until it expires by the local clock, even if the Lease was deleted
  // meanwhile: that leader may still be working, and a Lease created earlier would make two leaders.
  if (observed && old && old.holderIdentity !== '' && !ours) {
    const remaining = expiresInMs(observed, now);
    if (remaining > 0) return { action: 'wait', holder: old.holderIdentity, expiresInMs: remaining };
  }
  const transitions = old === undefined ? 0 : ours ? old.leaderTransitions : old.leaderTransitions + 1;
  if (!input.exists) return { action: 'create', record: { ...fresh, leaderTransitions: transitions } };
  // Still ours: nobody else can have written since, or the record would name them; the update carries
  // resourceVersion, so a write that slipped in between fails with 409.
  if (ours)
    return {
      action: 'renew',
      record: { ...fresh, acquireTime: old.acquireTime ?? time, leaderTransitions: transitions },
    };
  return { action: 'acquire', record: { ...fresh, leaderTransitions: transitions } };
}

/** Delay between acquisition attempts, spread like client-go's wait.JitterUntil so standbys do not pile up. */
export function acquireDelayMs(retryPeriodMs: number, random: number): number {
  return retryPeriodMs * (1 + random * JITTER_FACTOR);
}

/** The record a leader writes on shutdown: no holder, and a one-second lease in case an old client ignores that. */
export function releasedRecord(old: LeaderRecord, wallClock: Date): LeaderRecord {
  const time = wallClock.toISOString();
  return {
    holderIdentity: '',
    leaseDurationSeconds: 1,
    acquireTime: time,
    renewTime: time,
    leaderTransitions: old.leaderTransitions,
  };
}

/** A Lease spec as sent: MicroTime fields as strings. */
type LeaseSpecBody = Omit<k8s.V1LeaseSpec, 'acquireTime' | 'renewTime'> & {
  acquireTime?: string;
  renewTime?: string;
};

/** MicroTime: RFC 3339 with exactly six fractional digits (the API server parses no other form). */
export function microTime(t: string): string {
  return new Date(t).toISOString().slice(0, -1) + '000Z';
}

function toSpec(r: LeaderRecord): LeaseSpecBody {
  const micro = (t: string | undefined) => (t === undefined ? undefined : microTime(t));
  return {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: micro(r.acquireTime),
    renewTime: micro(r.renewTime),
    leaseTransitions: r.leaderTransitions,
  };
}

export interface ElectionLogger {
  debug(message: string, meta?: object): unknown;
  info(message: string, meta?: object): unknown;
  warn(message: string, meta?: object): unknown;
  error(message: string, meta?: object): unknown;
}

export interface LeaseElectorOptions {
  kc: KubeClient;
  namespace: string;
  name: string;
  /** Unique per candidate, e.g. the pod name; it is written into the Lease as holderIdentity. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger?: ElectionLogger;
}

export interface LeaderCallbacks {
  /** Start the leader's work; `signal` aborts the moment leadership is lost or stop() is called. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /**
   * Called once per term, right after the signal aborted. With stop({ release: true }) the Lease is
   * released only after the returned promise settles, so in-flight writes can finish first.
   */
  onStoppedLeading(): void | Promise<void>;
  /** A different (non-empty) holder was observed, including this candidate itself. */
  onNewLeader?(identity: string): void;
}

type Attempt =
  { outcome: 'ok' } | { outcome: 'held'; holder: string } | { outcome: 'failed'; reason: string };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Bounds one request. */
function withSignal(signal: AbortSignal): RequestOptions {
  return { signal };
}

function describe(err: unknown): string {
  if (err instanceof KubeApiError) {
    const message = err.statusMessage || err.body;
    return `HTTP ${err.code}${message ? `: ${message}` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export class LeaseElector {
  readonly identity: string;
  readonly namespace: string;
  readonly name: string;
  private readonly timings: Timings;
  private readonly api: KubeClient;
  private readonly log: ElectionLogger;
  /** The last Lease object read or written, for its resourceVersion. */
  private lease?: k8s.V1Lease;
  private observation?: Observation;
  private reportedLeader = '';
  private term?: AbortController;
  private run$?: Promise<void>;
  private stopController?: AbortController;
  private releaseOnStop = false;
  private onNewLeader?: (identity: string) => void;

  constructor(opts: LeaseElectorOptions) {
    if (!opts.identity) throw new RangeError('identity must not be empty');
    this.identity = opts.identity;
    this.namespace = opts.namespace;
    this.name = opts.name;
    this.timings = {
      leaseDurationMs: opts.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS,
      renewDeadlineMs: opts.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS,
      retryPeriodMs: opts.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS,
    };
    validateTimings(this.timings);
    this.api = opts.kc;
    this.log = opts.logger ?? createLogger('info', { defaults: { component: 'leader-election' } });
  }

  /** True between onStartedLeading and the abort of its signal. */
  isLeader(): boolean {
    return this.term !== undefined && !this.term.signal.aborted;
  }

  /**
   * Campaigns until stop(): acquires the Lease, leads while renewals succeed, and after losing it
   * (renew deadline passed, or someone else holds it) goes back to campaigning. Resolves after stop();
   * an elector runs once, a restarted process makes a new one.
   */
  run(callbacks: LeaderCallbacks): Promise<void> {
    if (this.run$) throw new Error('LeaseElector.run() was already called');
    const stop = new AbortController();
    this.stopController = stop;
    this.onNewLeader = callbacks.onNewLeader?.bind(callbacks);
    this.run$ = this.campaign(callbacks, stop.signal);
    return this.run$;
  }

  /**
   * Stops campaigning and ends the current term (onStoppedLeading is awaited). With release, a Lease
   * this candidate holds is handed back with no holder so a standby takes over within one retry period
   * instead of a full lease duration.
   */
  async stop(opts: { release: boolean }): Promise<void> {
    if (!this.stopController || !this.run$) return;
    this.releaseOnStop = opts.release;
    this.stopController.abort();
    await this.run$;
  }

  private ctx(): Record<string, string> {
    return { lease: `${this.namespace}/${this.name}`, identity: this.identity };
  }

  private async campaign(callbacks: LeaderCallbacks, stop: AbortSignal): Promise<void> {
    this.log.info('campaigning for leadership', this.ctx());
    while (!stop.aborted) {
      const renewedAt = await this.acquire(stop);
      if (renewedAt === undefined || stop.aborted) break;
      await this.lead(callbacks, stop, renewedAt);
    }
    if (this.releaseOnStop) await this.release();
  }

  /** Resolves with the local time the successful attempt started, or undefined once stopped. */
  private async acquire(stop: AbortSignal): Promise<number | undefined> {
    while (!stop.aborted) {
      const startedAt = performance.now();
      const attempt = await this.tryAcquireOrRenew(
        false,
        AbortSignal.any([stop, AbortSignal.timeout(this.timings.renewDeadlineMs)]),
      );
      if (attempt.outcome === 'ok' && !stop.aborted) return startedAt;
      if (attempt.outcome === 'failed' && !stop.aborted) {
        this.log.warn('could not acquire lease', { ...this.ctx(), reason: attempt.reason });
      }
      await sleep(acquireDelayMs(this.timings.retryPeriodMs, Math.random()), stop);
    }
    return undefined;
  }

  private async lead(callbacks: LeaderCallbacks, stop: AbortSignal, acquiredAt: number): Promise<void> {
    const term = new AbortController();
    this.term = term;
    let stopped: Promise<void> | undefined;
    const end = (reason: string) => {
      if (term.signal.aborted) return;
      clearTimeout(deadline);
      term.abort(new Error(reason));
      this.log.info('stopped leading', { ...this.ctx(), reason });
      stopped = this.invoke('onStoppedLeading', () => callbacks.onStoppedLeading());
    };
    // A timer, not a check after each request: a renewal hanging in a dead connection must not keep
    // this candidate leading past the deadline.
    const armDeadline = (renewedAt: number) =>
      setTimeout(
        () => end(`lease not renewed within ${this.timings.renewDeadlineMs} ms`),
        renewedAt + this.timings.renewDeadlineMs - performance.now(),
      );
    let deadline = armDeadline(acquiredAt);
    const onStop = () => end('stopped');
    stop.addEventListener('abort', onStop, { once: true });

    this.log.info('started leading', {
      ...this.ctx(),
      transitions: this.observation?.record.leaderTransitions,
    });
    void this.invoke('onStartedLeading', () => callbacks.onStartedLeading(term.signal));

    while (!term.signal.aborted) {
      await sleep(this.timings.retryPeriodMs, term.signal);
      if (term.signal.aborted) break;
      const startedAt = performance.now();
      const attempt = await this.tryAcquireOrRenew(true, term.signal);
      if (term.signal.aborted) break;
      if (attempt.outcome === 'ok') {
        clearTimeout(deadline);
        deadline = armDeadline(startedAt);
      } else if (attempt.outcome === 'held') {
        end(`lease is held by ${attempt.holder}`);
      } else {
        this.log.warn('could not renew lease', { ...this.ctx(), reason: attempt.reason });
      }
    }
    stop.removeEventListener('abort', onStop);
    this.term = undefined;
    await stopped;
  }

  /** Runs a callback, logging instead of propagating what it throws or rejects with. */
  private async invoke(name: string, fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.error(`${name} failed`, { ...this.ctx(), error: describe(err) });
    }
  }

  private noteObserved(lease: k8s.V1Lease): Observation {
    this.lease = lease;
    this.observation = observe(this.observation, recordOf(lease), performance.now());
    const holder = this.observation.record.holderIdentity;
    if (holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      if (holder !== '') {
        this.log.info('new leader observed', { ...this.ctx(), leader: holder });
        const report = this.onNewLeader;
        if (report) void this.invoke('onNewLeader', () => report(holder));
      }
    }
    return this.observation;
  }

  private decide(exists: boolean): Decision {
    return decide({
      observed: this.observation,
      exists,
      identity: this.identity,
      now: performance.now(),
      wallClock: new Date(),
      leaseDurationMs: this.timings.leaseDurationMs,
    });
  }

  private async tryAcquireOrRenew(leading: boolean, signal: AbortSignal): Promise<Attempt> {
    const options = withSignal(signal);
    // Fast path, as in client-go: the leader updates the object it last wrote without reading first.
    if (leading && this.lease && this.observation) {
      const decision = this.decide(true);
      if (decision.action === 'renew') {
        try {
          await this.write(decision.record, options);
          return { outcome: 'ok' };
        } catch (err) {
          // A transport error or 5xx would meet the read the same way; 409 and 404 need the read.
          if (!isConflict(err) && !isNotFound(err)) return { outcome: 'failed', reason: describe(err) };
          this.log.debug('renewal refused, reading the lease again', {
            ...this.ctx(),
            reason: describe(err),
          });
        }
      }
    }
    let exists = true;
    try {
      this.noteObserved(await this.api.get<k8s.V1Lease>(paths.lease(this.namespace, this.name), options));
    } catch (err) {
      if (!isNotFound(err)) return { outcome: 'failed', reason: describe(err) };
      exists = false;
    }
    const decision = this.decide(exists);
    try {
      switch (decision.action) {
        case 'wait':
          return { outcome: 'held', holder: decision.holder };
        case 'create': {
          const created = await this.api.create<k8s.V1Lease>(
            paths.leases(this.namespace),
            { metadata: { name: this.name, namespace: this.namespace }, spec: toSpec(decision.record) },
            options,
          );
          this.noteObserved(created);
          return { outcome: 'ok' };
        }
        case 'acquire':
        case 'renew':
          await this.write(decision.record, options);
          return { outcome: 'ok' };
      }
    } catch (err) {
      // 409 on create or update: another candidate wrote first; the next attempt reads its record.
      return { outcome: 'failed', reason: describe(err) };
    }
  }

  /** Replaces the spec of the last Lease seen; its resourceVersion makes a concurrent write fail with 409. */
  private async write(record: LeaderRecord, options: RequestOptions): Promise<void> {
    const base = this.lease;
    if (!base) throw new Error('no lease observed to update');
    const updated = await this.api.replace<k8s.V1Lease>(
      paths.lease(this.namespace, this.name),
      { ...base, spec: toSpec(record) },
      options,
    );
    this.noteObserved(updated);
  }

  private async release(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const obs = this.observation;
      if (!obs || obs.record.holderIdentity !== this.identity) return;
      const options = withSignal(AbortSignal.timeout(this.timings.renewDeadlineMs));
      try {
        await this.write(releasedRecord(obs.record, new Date()), options);
        this.log.info('released lease', this.ctx());
        return;
      } catch (err) {
        if (!isConflict(err) || attempt === 1) {
          this.log.warn('could not release lease', { ...this.ctx(), reason: describe(err) });
          return;
        }
      }
      // Someone changed the Lease since; read it, and release only if it still names this candidate.
      try {
        this.lease = await this.api.get<k8s.V1Lease>(paths.lease(this.namespace, this.name), options);
        this.observation = observe(this.observation, recordOf(this.lease), performance.now());
      } catch (err) {
        this.log.warn('could not release lease', { ...this.ctx(), reason: describe(err) });
        return;
      }
    }
  }
}
