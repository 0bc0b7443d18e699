import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeClient } from '../../../../src/kube/client.ts';
import { directTransport } from '../../../../src/kube/direct-transport.ts';
import { EventRecorder } from '../../../../src/reconcilers/workload-identity/events.ts';
import type { WorkloadIdentity } from '../../../../src/reconcilers/workload-identity/types.ts';

const wi: WorkloadIdentity = {
  apiVersion: 'identity.svid.dev/v1alpha1',
  kind: 'WorkloadIdentity',
  metadata: { name: 'payments', namespace: 'shop', uid: 'u-1', resourceVersion: '7', generation: 1 },
  spec: { serviceAccountName: 'payments', secretName: 'payments-svid' },
};

// The recorder's backlog policy, against a plain HTTP endpoint that answers every Event create with 201
// and remembers the reasons in the order they arrived.
describe('EventRecorder backlog', () => {
  let server: http.Server;
  let kc: KubeClient;
  const received: string[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push((JSON.parse(body) as { reason: string }).reason);
        res.writeHead(201, { 'content-type': 'application/json' }).end(body);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    kc = new KubeClient(
      await directTransport({
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        insecureSkipTlsVerify: false,
      }),
    );
  });

  after(async () => {
    await kc.close();
    server.close();
  });

  it('drops Normal events past the backlog, lets a Warning displace the oldest Normal, and sends the rest', async () => {
    let sent = 0;
    let dropped = 0;
    const errors: unknown[] = [];
    const recorder = new EventRecorder(kc, 'test', {
      ratePerSecond: 1000,
      backlog: 10,
      onSent: () => sent++,
      onDropped: () => dropped++,
      onError: (err) => errors.push(err),
    });
    for (let i = 0; i < 15; i++) recorder.record(wi, 'Normal', 'Issued', `issued ${i}`);
    recorder.record(wi, 'Warning', 'Failed', 'issuing failed');
    expect(recorder.pending).to.equal(10);
    expect(dropped).to.equal(6);
    const deadline = Date.now() + 10_000;
    while (sent < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(errors).to.deep.equal([]);
    expect(sent).to.equal(10);
    expect(received.filter((r) => r === 'Issued')).to.have.length(9);
    expect(received.at(-1)).to.equal('Failed');
  });

  it('records nothing after stop', () => {
    let dropped = 0;
    const recorder = new EventRecorder(kc, 'test', {
      ratePerSecond: 1000,
      backlog: 10,
      onSent: () => undefined,
      onDropped: () => dropped++,
      onError: () => undefined,
    });
    recorder.stop();
    recorder.record(wi, 'Normal', 'Issued', 'late');
    expect(recorder.pending).to.equal(0);
    expect(dropped).to.equal(0);
  });
});
