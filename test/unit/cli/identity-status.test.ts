import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import { formatStatus, type Read } from '../../../src/cli/identity-status.ts';
import { ANNOTATION_RENEW_REQUEST } from '../../../src/controller/renew-request.ts';
import type { WorkloadIdentity } from '../../../src/controller/types.ts';
import { createSelfSignedCa, issueSvid, loadCa } from '../../../src/pki/index.ts';

const now = new Date('2030-01-01T00:00:00Z');
const base = (over: Partial<WorkloadIdentity> = {}): WorkloadIdentity => ({
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: { name: 'payments', namespace: 'prod', uid: 'u1' },
  spec: { serviceAccountName: 'payments', secretName: 'payments-svid' },
  ...over,
});
const none: Read<k8s.V1Secret | undefined> = { ok: true, value: undefined };
const noEvents: Read<k8s.CoreV1Event[]> = { ok: true, value: [] };
const event = (reason: string, message: string, at: string, type = 'Normal'): k8s.CoreV1Event => ({
  metadata: {},
  involvedObject: {},
  reason,
  message,
  type,
  lastTimestamp: new Date(at),
});

describe('svidctl status formatting', () => {
  it('shows a fresh identity the operator has not reported on', () => {
    const out = formatStatus(base(), none, noEvents, now).join('\n');
    expect(out).to.contain('SPIFFE ID:     (not issued yet)');
    expect(out).to.contain('Ready:         Unknown (the operator has not reported yet)');
    expect(out).to.contain('Secret:        prod/payments-svid does not exist (yet)');
    expect(out).to.contain('Events:        (none)');
  });

  it('shows the SVID, renewal, condition, pending renew request, and the last 5 events in order', () => {
    const wi = base({
      metadata: {
        name: 'payments',
        namespace: 'prod',
        uid: 'u1',
        annotations: { [ANNOTATION_RENEW_REQUEST]: 'r2' },
      },
      status: {
        spiffeID: 'spiffe://example.org/ns/prod/sa/payments',
        serialNumber: 'ab12',
        notBefore: '2029-12-31T23:00:00Z',
        notAfter: '2030-01-01T01:00:00Z',
        renewalTime: '2030-01-01T00:40:00Z',
        revision: 3,
        lastRenewRequest: 'r1',
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Renewed',
            message: 'SVID ab12 valid',
            lastTransitionTime: '2029-12-31T23:00:00Z',
          },
        ],
      },
    });
    const events = Array.from({ length: 7 }, (_, i) =>
      event(`R${i}`, `m${i}`, `2029-12-31T23:0${6 - i}:00Z`),
    );
    const out = formatStatus(wi, none, { ok: true, value: events }, now);
    const text = out.join('\n');
    expect(text).to.contain('Ready:         True (Renewed) since 2029-12-31T23:00:00Z (1h ago)');
    expect(text).to.contain('Renewal:       2030-01-01T00:40:00Z (in 40m)');
    expect(text).to.contain('Renew request: r2 (pending: the operator has not re-issued yet)');
    expect(text).to.contain('Events:        last 5');
    // Oldest first, the newest last; R0 (23:06) is the newest, R5 and R6 are the two left out.
    expect(out.slice(-5).map((l) => /(R\d)/.exec(l)?.[1])).to.deep.equal(['R4', 'R3', 'R2', 'R1', 'R0']);
  });

  it('says the renew request was done when status records it', () => {
    const wi = base({
      metadata: { name: 'p', namespace: 'prod', uid: 'u', annotations: { [ANNOTATION_RENEW_REQUEST]: 'r1' } },
      status: { lastRenewRequest: 'r1' },
    });
    expect(formatStatus(wi, none, noEvents, now).join('\n')).to.contain('Renew request: r1 (done)');
  });

  // Adversarial API content: each must come out on one line, bounded, without terminal control.
  const hostile: { name: string; text: string }[] = [
    { name: 'a newline that forges a line', text: 'ok\nReady:         True' },
    { name: 'an ANSI escape', text: '\u001b[2J\u001b[31mred' },
    { name: 'a bidi override', text: 'abc\u202edcba' },
    { name: 'a NUL', text: 'a\u0000b' },
    { name: 'a line separator', text: 'a\u2028b' },
    { name: 'a 100,000-character message', text: 'x'.repeat(100_000) },
  ];
  for (const h of hostile) {
    it(`prints ${h.name} in an event or condition safely`, () => {
      const wi = base({
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'False',
              reason: h.text,
              message: h.text,
              lastTransitionTime: 'not a date',
            },
          ],
        },
      });
      const out = formatStatus(
        wi,
        none,
        { ok: true, value: [event(h.text, h.text, '2029-12-31T00:00:00Z', h.text)] },
        now,
      );
      for (const line of out) {
        expect(
          [...line].every(
            (c) => c.charCodeAt(0) >= 0x20 && !/[\u007f-\u009f\u2028\u2029\u202a-\u202e]/.test(c),
          ),
        ).to.equal(true);
        expect(line.length).to.be.below(1200);
      }
      expect(out.filter((l) => l.startsWith('Ready:'))).to.have.length(1);
    });
  }

  it('says when the Secret or the events cannot be read, and when tls.crt is not a certificate', () => {
    const forbidden = formatStatus(
      base(),
      { ok: false, why: 'HTTP 403' },
      { ok: false, why: 'HTTP 403' },
      now,
    );
    expect(forbidden).to.include('Secret:        prod/payments-svid not readable (HTTP 403)');
    expect(forbidden).to.include('Events:        not readable (HTTP 403)');
    const garbage = { data: { 'tls.crt': Buffer.from('garbage').toString('base64') } };
    expect(formatStatus(base(), { ok: true, value: garbage }, noEvents, now)).to.include(
      'Secret:        prod/payments-svid holds a tls.crt that is not a certificate',
    );
  });

  it("reads the Secret's SVID and never prints its key", async () => {
    const ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    const svid = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/prod/sa/payments',
      durationSeconds: 3600,
    });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const secret = {
      data: { 'tls.crt': b64(svid.certChainPem), 'tls.key': b64(svid.keyPem), 'ca.crt': b64(svid.bundlePem) },
    };
    const wi = base({ status: { serialNumber: svid.serialNumber } });
    const out = formatStatus(wi, { ok: true, value: secret }, noEvents, new Date()).join('\n');
    expect(out).to.contain(`serial ${svid.serialNumber} (as on status)`);
    expect(out).to.contain('spiffe://example.org/ns/prod/sa/payments, valid until');
    expect(out).not.to.contain('PRIVATE KEY');
    expect(out).not.to.contain(b64(svid.keyPem).slice(0, 20));
    const other = formatStatus(
      base({ status: { serialNumber: 'ffff' } }),
      { ok: true, value: secret },
      noEvents,
      new Date(),
    );
    expect(other.join('\n')).to.contain('(status says ffff)');
  });
});
