import { expect } from 'chai';
import { Registry } from 'prom-client';
import { ControllerMetrics, identitySamples } from '../../../../src/reconcilers/workload-identity/metrics.ts';
import type { WorkloadIdentity } from '../../../../src/reconcilers/workload-identity/types.ts';

const identity = (
  name: string,
  status?: WorkloadIdentity['status'],
  extra: Partial<WorkloadIdentity['metadata']> = {},
): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: { name, namespace: 'prod', uid: `uid-${name}`, ...extra },
  spec: { serviceAccountName: name, secretName: `${name}-svid` },
  status,
});

const readyStatus = (status: 'True' | 'False', notAfter?: string, renewalTime?: string) => ({
  notAfter,
  renewalTime,
  conditions: [{ type: 'Ready', status, reason: 'Issued', message: 'm', lastTransitionTime: '' }],
});

/** The sample lines of one metric in the text exposition. */
const lines = (text: string, name: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .sort();

describe('per-identity metrics', () => {
  it('reads Ready, notAfter and the renewal time from the status', () => {
    const wi = identity('a', readyStatus('True', '2026-01-01T01:00:00Z', '2026-01-01T00:40:00Z'));
    expect(identitySamples(wi)).to.deep.equal({
      ready: 1,
      expiry: Date.parse('2026-01-01T01:00:00Z') / 1000,
      renewal: Date.parse('2026-01-01T00:40:00Z') / 1000,
    });
  });

  const table: [string, WorkloadIdentity, ReturnType<typeof identitySamples>][] = [
    ['no status yet', identity('a'), { ready: 0, expiry: undefined, renewal: undefined }],
    ['Ready=False', identity('a', readyStatus('False')), { ready: 0, expiry: undefined, renewal: undefined }],
    [
      'Ready=False keeping an earlier SVID',
      identity('a', readyStatus('False', '2026-01-01T01:00:00Z')),
      { ready: 0, expiry: Date.parse('2026-01-01T01:00:00Z') / 1000, renewal: undefined },
    ],
    [
      'no Ready condition',
      identity('a', { conditions: [] }),
      { ready: 0, expiry: undefined, renewal: undefined },
    ],
    [
      'a condition of another type saying True',
      identity('a', {
        conditions: [{ type: 'Other', status: 'True', reason: '', message: '', lastTransitionTime: '' }],
      }),
      { ready: 0, expiry: undefined, renewal: undefined },
    ],
    ['being deleted', identity('a', readyStatus('True'), { deletionTimestamp: '2026-01-01T00:00:00Z' }), {}],
  ];
  for (const [what, wi, want] of table) {
    it(`an identity with ${what}`, () => expect(identitySamples(wi)).to.deep.equal(want));
  }

  it('exports one series per identity the source holds now, none for one it no longer holds', async () => {
    const m = new ControllerMetrics(new Registry());
    let held = [
      identity('a', readyStatus('True', '2026-01-01T01:00:00Z', '2026-01-01T00:40:00Z')),
      identity('b', readyStatus('False')),
    ];
    m.identitiesFrom(() => held);
    let text = await m.registry.metrics();
    expect(lines(text, 'svid_operator_identity_ready')).to.deep.equal([
      'svid_operator_identity_ready{namespace="prod",name="a"} 1',
      'svid_operator_identity_ready{namespace="prod",name="b"} 0',
    ]);
    expect(lines(text, 'svid_operator_certificate_expiry_timestamp_seconds')).to.deep.equal([
      `svid_operator_certificate_expiry_timestamp_seconds{namespace="prod",name="a"} ${Date.parse('2026-01-01T01:00:00Z') / 1000}`,
    ]);
    expect(lines(text, 'svid_operator_certificate_renewal_timestamp_seconds')).to.deep.equal([
      `svid_operator_certificate_renewal_timestamp_seconds{namespace="prod",name="a"} ${Date.parse('2026-01-01T00:40:00Z') / 1000}`,
    ]);
    expect(text).to.include('# TYPE svid_operator_identity_ready gauge');
    // The watch delivered a's deletion: its series go with it, nothing to remove by hand.
    held = [held[1] as WorkloadIdentity];
    text = await m.registry.metrics();
    expect(lines(text, 'svid_operator_identity_ready')).to.deep.equal([
      'svid_operator_identity_ready{namespace="prod",name="b"} 0',
    ]);
    expect(lines(text, 'svid_operator_certificate_expiry_timestamp_seconds')).to.deep.equal([]);
  });

  it('leaves out a timestamp that does not parse instead of exporting NaN', async () => {
    const m = new ControllerMetrics(new Registry());
    m.identitiesFrom(() => [identity('a', readyStatus('True', 'not a time', ''))]);
    const text = await m.registry.metrics();
    expect(text).not.to.match(/NaN/);
    expect(lines(text, 'svid_operator_certificate_expiry_timestamp_seconds')).to.deep.equal([]);
    expect(lines(text, 'svid_operator_identity_ready')).to.deep.equal([
      'svid_operator_identity_ready{namespace="prod",name="a"} 1',
    ]);
  });

  it('exports no per-identity series before a controller gives it identities, and a new source replaces the old', async () => {
    const m = new ControllerMetrics(new Registry());
    expect(lines(await m.registry.metrics(), 'svid_operator_identity_ready')).to.deep.equal([]);
    m.identitiesFrom(() => [identity('a')]);
    m.identitiesFrom(() => [identity('c')]);
    expect(lines(await m.registry.metrics(), 'svid_operator_identity_ready')).to.deep.equal([
      'svid_operator_identity_ready{namespace="prod",name="c"} 0',
    ]);
  });

  it('JSON export and resetMetrics work as with prom-client gauges', async () => {
    const m = new ControllerMetrics(new Registry());
    m.identitiesFrom(() => [identity('a', readyStatus('True'))]);
    m.registry.resetMetrics();
    const json = await m.registry.getMetricsAsJSON();
    const ready = json.find((x) => x.name === 'svid_operator_identity_ready');
    expect(ready?.values).to.deep.equal([{ labels: { namespace: 'prod', name: 'a' }, value: 1 }]);
  });
});

describe('work queue metrics', () => {
  const QUEUE_METRICS = {
    svid_operator_workqueue_depth: 'depth',
    svid_operator_workqueue_scheduled: 'scheduled',
    svid_operator_workqueue_active: 'active',
    svid_operator_workqueue_writing: 'writing',
    svid_operator_issuance_pacer_backlog: 'pacerBacklog',
    svid_operator_issuance_pacer_ahead: 'pacerAhead',
  } as const;
  const value = (text: string, name: string) =>
    text
      .split('\n')
      .find((l) => l.startsWith(`${name} `))
      ?.split(' ')[1];

  it('reads the queue on each scrape, for the whole page and for one metric by name', async () => {
    const m = new ControllerMetrics(new Registry());
    let scrape = 0;
    m.queueFrom(() => {
      scrape++;
      return { depth: 10 * scrape + 1, scheduled: 2, active: 3, writing: 4, pacerBacklog: 5, pacerAhead: 6 };
    });
    const first = await m.registry.metrics();
    expect(Object.keys(QUEUE_METRICS).map((n) => value(first, n))).to.deep.equal([
      '11',
      '2',
      '3',
      '4',
      '5',
      '6',
    ]);
    const again = await m.registry.getSingleMetricAsString('svid_operator_workqueue_depth');
    expect(value(again, 'svid_operator_workqueue_depth')).to.equal(String(10 * scrape + 1));
    expect(scrape).to.be.greaterThan(5);
  });

  it('exports 0 before a controller gives it a queue', async () => {
    const text = await new ControllerMetrics(new Registry()).registry.metrics();
    for (const name of Object.keys(QUEUE_METRICS)) expect(value(text, name), name).to.equal('0');
  });
});
