// The Workload API source against a hand-driven gRPC server: the protocol rules of the SPIFFE Workload
// Endpoint and Workload API specs, validation before use, and ready(). Interop with a real SPIRE agent is
// in test/interop/spire.test.ts.
import { expect } from 'chai';
import { once } from 'node:events';
import { backoffDelay } from '../../packages/mtls/src/workload-api/backoff.ts';
import type { Timers } from '../../packages/mtls/src/workload-api/client.ts';
import { encodeFrame } from '../../packages/mtls/src/workload-api/grpc-frame.ts';
import { certificatesFromPem, WorkloadApiSource, type Svid } from '@svid-operator/mtls';
import { FakeWorkloadApi } from '../../hack/lib/fake-workload-api.ts';
import { certsDer, svidMessage } from '../support/svid-der.ts';
import { issueSvid } from '../../src/pki/index.ts';
import { makePki, TD, type Pki } from './fixtures.ts';

/** Timers the test fires by hand: no sleeping on backoff. */
class ManualTimers implements Timers {
  readonly pending: { fn: () => void; ms: number }[] = [];
  setTimeout(fn: () => void, ms: number): unknown {
    const t = { fn, ms };
    this.pending.push(t);
    return t;
  }
  clearTimeout(h: unknown): void {
    const i = this.pending.indexOf(h as { fn: () => void; ms: number });
    if (i >= 0) this.pending.splice(i, 1);
  }
  fireNext(): number {
    const t = this.pending.shift();
    if (!t) throw new Error('no retry scheduled');
    t.fn();
    return t.ms;
  }
}

const nextError = (s: WorkloadApiSource) => once(s, 'error').then(([e]) => e as Error);
const nextUpdate = (s: WorkloadApiSource) => once(s, 'update').then(([u]) => u as Svid);
/** ready(), then the SVID it made available. */
const svidOf = async (s: WorkloadApiSource, timeoutMs: number) => {
  await s.ready(timeoutMs);
  return s.current();
};
const fingerprints = (certs: readonly { fingerprint256: string }[] | undefined) =>
  (certs ?? []).map((c) => c.fingerprint256);
const pemFingerprints = (pem: string) => fingerprints(certificatesFromPem(pem, 'test'));

describe('Workload API source (protocol, against a scripted server)', function () {
  let pki: Pki;
  let api: FakeWorkloadApi;
  const sources: WorkloadApiSource[] = [];
  const open = (opts: ConstructorParameters<typeof WorkloadApiSource>[0] = {}) => {
    const s = new WorkloadApiSource({
      address: api.address,
      logger: null,
      backoff: { initialMs: 1, maxMs: 5 },
      ...opts,
    });
    sources.push(s);
    return s.start();
  };

  before(async () => {
    pki = await makePki();
  });
  beforeEach(async () => {
    api = await FakeWorkloadApi.start();
  });
  afterEach(async () => {
    for (const s of sources.splice(0)) s.close();
    await api.stop();
  });

  it('sends the security header, receives the first SVID and its trust domain bundle', async () => {
    const issued = await pki.issue('web');
    api.state = { svids: [svidMessage(issued)], crl: [], federatedBundles: new Map() };
    const source = open();
    const svid = await svidOf(source, 10_000);
    expect(api.calls[0]?.headers['workload.spiffe.io']).to.equal('true');
    expect(api.calls[0]?.headers['content-type']).to.equal('application/grpc');
    expect(api.calls[0]?.headers[':path']).to.equal('/SpiffeWorkloadAPI/FetchX509SVID');
    expect(svid.spiffeId).to.equal(issued.spiffeId);
    expect(svid.serialNumber).to.equal(issued.serialNumber.toLowerCase());
    expect(source.trustDomains()).to.deep.equal([TD]);
    expect(fingerprints(source.bundleFor(TD)?.roots)).to.deep.equal(pemFingerprints(issued.bundlePem));
    expect(svid.privateKey.type).to.equal('private');
    expect(JSON.stringify(svid)).to.not.match(/PRIVATE KEY|privateKey":\{/);
  });

  it('takes each message as the full state: a new SVID replaces the old on the open stream', async () => {
    api.state = { svids: [svidMessage(await pki.issue('web'))], crl: [], federatedBundles: new Map() };
    const source = open();
    await source.ready(10_000);
    const next = await pki.issue('web');
    const updated = nextUpdate(source);
    api.push({ svids: [svidMessage(next)], crl: [], federatedBundles: new Map() });
    const svid = await updated;
    expect(svid.serialNumber).to.equal(next.serialNumber.toLowerCase());
    expect(source.current()).to.equal(svid);
    expect(api.calls).to.have.length(1);
  });

  it('a change of federated bundles alone is an update; unchanged bundles keep their object; another trust domain is refused', async () => {
    const issued = await pki.issue('web');
    const other = await pki.issue('x', { ca: pki.otherCa });
    api.state = { svids: [svidMessage(issued)], crl: [], federatedBundles: new Map() };
    const source = open();
    await source.ready();
    const own = source.bundleFor(TD);
    const updated = nextUpdate(source);
    api.push({
      svids: [svidMessage(issued)],
      crl: [],
      federatedBundles: new Map([['partner.example', certsDer(other.bundlePem)]]),
    });
    expect((await updated).serialNumber).to.equal(issued.serialNumber.toLowerCase());
    expect(source.bundleFor(TD)).to.equal(own);
    expect(fingerprints(source.bundleFor('partner.example')?.roots)).to.deep.equal(
      pemFingerprints(other.bundlePem),
    );
    const failed = nextError(source);
    const elsewhere = await issueSvid(pki.ca, {
      spiffeId: 'spiffe://elsewhere.example/ns/x/sa/web',
      durationSeconds: 600,
    });
    api.push({ svids: [svidMessage(elsewhere)], crl: [], federatedBundles: new Map() });
    expect((await failed).message).to.match(
      /keeping SVID .*: .*another trust domain than .*restart to change trust domains/,
    );
    expect(source.current().spiffeId).to.equal(issued.spiffeId);
  });

  it('uses the first SVID by default, or the one with the hint, and keeps federated bundles per trust domain', async () => {
    const a = await pki.issue('a');
    const b = await pki.issue('b');
    const other = await pki.issue('x', { ca: pki.otherCa });
    api.state = {
      svids: [svidMessage(a, 'internal'), svidMessage(b, 'external')],
      crl: [],
      federatedBundles: new Map([
        ['spiffe://partner.example', certsDer(other.bundlePem)],
        ['bare.example', certsDer(other.bundlePem)],
      ]),
    };
    expect((await svidOf(open(), 10_000)).spiffeId).to.equal(a.spiffeId);
    const hinted = open({ hint: 'external' });
    expect((await svidOf(hinted, 10_000)).spiffeId).to.equal(b.spiffeId);
    expect(hinted.trustDomains().sort()).to.deep.equal(['bare.example', 'partner.example', TD].sort());
    expect(fingerprints(hinted.bundleFor('partner.example')?.roots)).to.deep.equal(
      pemFingerprints(other.bundlePem),
    );
    expect(hinted.bundleFor('partner.example')?.trustDomain).to.equal('partner.example');
    expect(hinted.bundleFor('unknown.example')).to.equal(undefined);
    const missing = open({ hint: 'nope' });
    const err = await missing.ready(500).catch((e: Error) => e);
    expect((err as Error).message).to.match(
      /last error: .*no SVID with hint "nope"; the agent sent hints "internal", "external"/,
    );
  });

  it('refuses bad updates and keeps the previous SVID: mismatched key, other CA, expired, garbage, wrong label', async () => {
    const good = await pki.issue('web');
    api.state = { svids: [svidMessage(good)], crl: [], federatedBundles: new Map() };
    const source = open();
    await source.ready(10_000);
    const other = await pki.issue('web');
    const expired = await pki.issue('web', { now: new Date(Date.now() - 7200_000), durationSeconds: 600 });
    const foreign = await pki.issue('web', { ca: pki.otherCa });
    const bad: [string, ReturnType<typeof svidMessage>, RegExp][] = [
      [
        'mismatched key',
        { ...svidMessage(good), x509SvidKey: svidMessage(other).x509SvidKey },
        /private key does not match/,
      ],
      [
        'chain to another CA',
        { ...svidMessage(foreign), bundle: svidMessage(good).bundle },
        /does not chain to the trust bundle/,
      ],
      ['expired', svidMessage(expired), /expired at/],
      [
        'truncated chain',
        { ...svidMessage(good), x509Svid: svidMessage(good).x509Svid.subarray(0, 100) },
        /not a list of DER certificates/,
      ],
      [
        'garbage key',
        { ...svidMessage(good), x509SvidKey: Uint8Array.from([1, 2, 3]) },
        /not an unencrypted DER PKCS#8 key/,
      ],
      ['no key', { ...svidMessage(good), x509SvidKey: new Uint8Array(0) }, /has no private key/],
      [
        'wrong label',
        { ...svidMessage(good), spiffeId: `spiffe://${TD}/ns/test/sa/admin` },
        /labelled the SVID .*admin but its certificate says .*web/,
      ],
      ['not a SPIFFE ID', { ...svidMessage(good), spiffeId: 'https://x' }, /is not a SPIFFE ID/],
    ];
    for (const [name, msg, reason] of bad) {
      const error = nextError(source);
      api.push({ svids: [msg], crl: [], federatedBundles: new Map() });
      const err = await error;
      expect(err.message, name).to.match(reason);
      expect(err.message, name).to.match(new RegExp(`^keeping SVID ${good.serialNumber.toLowerCase()}`));
      expect(err.message).not.to.include('PRIVATE KEY');
      expect(source.current().serialNumber, name).to.equal(good.serialNumber.toLowerCase());
    }
    const empty = nextError(source);
    api.push({ svids: [], crl: [], federatedBundles: new Map() });
    expect((await empty).message).to.match(/holds no SVID/);
    // A message that does not decode leaves the stream open; the next good one is used.
    const undecodable = nextError(source);
    api.pushRaw(encodeFrame(Uint8Array.from([0x08, 0x01])));
    expect((await undecodable).message).to.match(/X509SVIDResponse.svids \(field 1\) has wire type 0/);
    const updated = nextUpdate(source);
    api.push({ svids: [svidMessage(other)], crl: [], federatedBundles: new Map() });
    expect((await updated).serialNumber).to.equal(other.serialNumber.toLowerCase());
    expect(api.calls).to.have.length(1);
  });

  it('retries PERMISSION_DENIED and UNAVAILABLE with growing backoff, resetting after a message', async () => {
    const timers = new ManualTimers();
    api.script.push(
      FakeWorkloadApi.status(7, 'no identity issued'),
      FakeWorkloadApi.status(14, 'agent starting'),
    );
    api.state = { svids: [svidMessage(await pki.issue('web'))], crl: [], federatedBundles: new Map() };
    const source = open({ timers, backoff: { initialMs: 1000, maxMs: 30_000 } });
    const first = await nextError(source);
    expect(first.message).to.match(
      /answered PERMISSION_DENIED: no identity issued .*registration entry.*retrying in 1000 ms/,
    );
    expect(timers.fireNext()).to.equal(1000);
    const second = await nextError(source);
    expect(second.message).to.match(/answered UNAVAILABLE: agent starting; retrying in 2000 ms/);
    expect(timers.fireNext()).to.equal(2000);
    await source.ready(10_000);
    expect(api.calls).to.have.length(3);
    // The agent ends the stream: re-opened, and the delay starts over because a message arrived.
    const ended = nextError(source);
    api.endAll(14, 'shutting down');
    expect((await ended).message).to.match(/UNAVAILABLE: shutting down; retrying in 1000 ms/);
    expect(backoffDelay({ initialMs: 1000, maxMs: 30_000 }, 10)).to.equal(30_000);
  });

  for (const [code, name] of [
    [3, 'INVALID_ARGUMENT'],
    [12, 'UNIMPLEMENTED'],
  ] as const) {
    it(`stops on ${name} and ready() fails at once saying why`, async () => {
      const timers = new ManualTimers();
      api.script.push(FakeWorkloadApi.status(code, 'nope'));
      const source = open({ timers });
      const err = await source.ready(60_000).catch((e: Error) => e);
      expect(err).to.be.instanceOf(Error);
      expect((err as Error).message).to.match(
        new RegExp(`stopped; last error: .*answered ${name}: nope.*not retrying`),
      );
      expect(timers.pending).to.have.length(0);
    });
  }

  it('a request without the security header is refused by a conforming server (INVALID_ARGUMENT)', async () => {
    // The scripted server checks the header like SPIRE; this pins that the check is what the client meets.
    const res = await fetchWithoutHeader(api.socket);
    expect(res['grpc-status']).to.equal('3');
  });

  it('ready() names the cause when nothing arrives in time', async () => {
    api.script.push((call) => call.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }));
    const source = open();
    const err = await source.ready(300).catch((e: Error) => e);
    expect((err as Error).message).to.match(
      /no valid SVID arrived from the Workload API at unix:\/\/.*within 300 ms; the agent sent nothing \(is this workload registered/,
    );
    expect(() => source.current()).to.throw(/await source.ready\(timeoutMs\) first/);
  });

  it('re-opens after broken framing, an oversize message, a non-gRPC answer and a stream cut mid-message', async () => {
    api.state = { svids: [svidMessage(await pki.issue('web'))], crl: [], federatedBundles: new Map() };
    api.script.push(
      FakeWorkloadApi.raw(Uint8Array.from([1, 0, 0, 0, 0])),
      FakeWorkloadApi.raw(Uint8Array.from([0, 0, 0x10, 0, 1])),
      (call) => call.stream.respond({ ':status': 404, 'content-type': 'text/plain' }, { endStream: true }),
      (call) => {
        call.stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        call.stream.end(Uint8Array.from([0, 0, 0, 0, 9, 1]));
      },
    );
    const source = open({ maxMessageBytes: 1024 * 1024 });
    const errors: string[] = [];
    source.on('error', (e) => errors.push(e.message));
    await source.ready(10_000);
    expect(errors).to.have.length(4);
    expect(errors[0]).to.match(/compressed gRPC message/);
    expect(errors[1]).to.match(/1048577-byte message; the limit is 1048576 bytes/);
    expect(errors[2]).to.match(/is not a gRPC server \(HTTP 404, content-type text\/plain\)/);
    expect(errors[3]).to.match(/ended in the middle of a message/);
  });

  it('waits for an agent that is not up yet, and works over tcp:// too', async () => {
    await api.stop();
    api = await FakeWorkloadApi.start({ listen: false });
    api.state = { svids: [svidMessage(await pki.issue('web'))], crl: [], federatedBundles: new Map() };
    const source = open();
    const err = await nextError(source);
    expect(err.message).to.match(/cannot reach the Workload API at unix:\/\/.*api\.sock.*retrying/);
    await api.listen();
    expect((await svidOf(source, 10_000)).spiffeId).to.match(/sa\/web$/);

    const tcp = await FakeWorkloadApi.start({ tcp: true });
    try {
      tcp.state = api.state;
      expect(tcp.address).to.match(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      const viaTcp = new WorkloadApiSource({ address: tcp.address, logger: null });
      sources.push(viaTcp.start());
      expect((await svidOf(viaTcp, 10_000)).spiffeId).to.match(/sa\/web$/);
    } finally {
      for (const s of sources.splice(0)) s.close();
      await tcp.stop();
    }
  });

  it('takes the address from SPIFFE_ENDPOINT_SOCKET, and says so when it is missing or invalid', () => {
    const saved = process.env.SPIFFE_ENDPOINT_SOCKET;
    try {
      delete process.env.SPIFFE_ENDPOINT_SOCKET;
      expect(() => new WorkloadApiSource({ logger: null })).to.throw(/SPIFFE_ENDPOINT_SOCKET is not set/);
      process.env.SPIFFE_ENDPOINT_SOCKET = 'unix://relative/agent.sock';
      expect(() => new WorkloadApiSource({ logger: null })).to.throw(/a unix address has no host/);
      process.env.SPIFFE_ENDPOINT_SOCKET = api.address;
      const s = new WorkloadApiSource({ logger: null });
      expect(s.address).to.equal(api.address);
      s.close();
    } finally {
      if (saved === undefined) delete process.env.SPIFFE_ENDPOINT_SOCKET;
      else process.env.SPIFFE_ENDPOINT_SOCKET = saved;
    }
  });
});

async function fetchWithoutHeader(socket: string): Promise<Record<string, unknown>> {
  const http2 = await import('node:http2');
  const net = await import('node:net');
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socket) });
  try {
    const req = session.request({
      ':method': 'POST',
      ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
      'content-type': 'application/grpc',
    });
    req.end(encodeFrame(new Uint8Array(0)));
    const [headers] = (await once(req, 'response')) as [Record<string, unknown>];
    return headers;
  } finally {
    session.destroy();
  }
}
