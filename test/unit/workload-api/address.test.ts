import { expect } from 'chai';
import fc from 'fast-check';
import { parseEndpointAddress } from '../../../packages/mtls/src/workload-api/address.ts';
import { backoffDelay, shouldRetry } from '../../../packages/mtls/src/workload-api/backoff.ts';
import { WorkloadApiError } from '../../../packages/mtls/src/workload-api/errors.ts';
import { decodeGrpcMessage, statusFromTrailers } from '../../../packages/mtls/src/workload-api/status.ts';

describe('Workload API endpoint address, status and retry rule', () => {
  it('accepts the forms the SPIFFE Workload Endpoint spec allows', () => {
    expect(parseEndpointAddress('unix:///run/spire/agent.sock')).to.deep.equal({
      kind: 'unix',
      path: '/run/spire/agent.sock',
    });
    expect(parseEndpointAddress('unix:/run/spire/agent.sock')).to.deep.equal({
      kind: 'unix',
      path: '/run/spire/agent.sock',
    });
    expect(parseEndpointAddress('tcp://127.0.0.1:8081')).to.deep.equal({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 8081,
    });
    expect(parseEndpointAddress('tcp://[::1]:8081')).to.deep.equal({ kind: 'tcp', host: '::1', port: 8081 });
  });

  const bad: [string, RegExp][] = [
    ['', /is not a URL/],
    ['/run/agent.sock', /is not a URL/],
    ['unix://run/agent.sock', /a unix address has no host/],
    ['unix:', /socket path must be absolute/],
    ['unix:///', /socket path must be absolute/],
    ['unix:///a.sock?x=1', /has a query/],
    ['unix:///a.sock#f', /has a fragment/],
    ['unix://user@host/a.sock', /has user info/],
    ['unix:///a%00.sock', /NUL byte/],
    ['unix:///a%zz%.sock', /invalid percent-escape/],
    ['tcp://agent.local:8081', /must be an IP address, not a name/],
    ['tcp://127.0.0.1', /port is missing/],
    ['tcp://127.0.0.1:8081/path', /has no path/],
    ['tcp://u:p@127.0.0.1:8081', /has user info/],
    ['http://127.0.0.1:8081', /scheme http: is neither unix: nor tcp:/],
    ['tcp://127.0.0.1:99999', /is not a URL/],
    ['x'.repeat(5000), /longer than 4096/],
  ];
  for (const [addr, reason] of bad) {
    it(`refuses ${JSON.stringify(addr.slice(0, 40))}`, () => {
      let caught: unknown;
      try {
        parseEndpointAddress(addr);
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(WorkloadApiError);
      expect((caught as WorkloadApiError).reason).to.equal('address');
      expect((caught as Error).message).to.match(reason);
      expect((caught as Error).message).to.match(/expected unix:\/\/\/path\/to\/socket or tcp:\/\/IP:port/);
    });
  }

  it('never throws anything but a WorkloadApiError on any string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `unix://${s}`),
          fc.string().map((s) => `tcp://${s}`),
        ),
        (s) => {
          try {
            const a = parseEndpointAddress(s);
            if (a.kind === 'unix') expect(a.path.startsWith('/')).to.equal(true);
            else expect(a.port).to.be.within(0, 65535);
          } catch (err) {
            if (!(err instanceof WorkloadApiError)) throw err;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('reads grpc-status and the percent-encoded grpc-message; a missing or odd status is UNKNOWN', () => {
    expect(
      statusFromTrailers({ 'grpc-status': '7', 'grpc-message': 'no%20identity%20issued' }),
    ).to.deep.equal({
      code: 7,
      message: 'no identity issued',
    });
    expect(statusFromTrailers({})).to.deep.equal({ code: 2, message: '' });
    expect(statusFromTrailers({ 'grpc-status': '-1' }).code).to.equal(2);
    expect(statusFromTrailers({ 'grpc-status': '1e3' }).code).to.equal(2);
    expect(decodeGrpcMessage('100%')).to.equal('100%');
    expect(decodeGrpcMessage('%E2%9C%93')).to.equal('✓');
  });

  it('retries everything but INVALID_ARGUMENT and UNIMPLEMENTED, doubling up to the cap', () => {
    expect([3, 12].map(shouldRetry)).to.deep.equal([false, false]);
    expect([undefined, 0, 1, 2, 7, 13, 14, 16].map(shouldRetry).every(Boolean)).to.equal(true);
    const p = { initialMs: 1000, maxMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 1000].map((n) => backoffDelay(p, n))).to.deep.equal([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });
});
