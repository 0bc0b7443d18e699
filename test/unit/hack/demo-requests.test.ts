import { expect } from 'chai';
import fc from 'fast-check';
import { formatRequest, parseClientLine, RequestTally } from '../../../hack/lib/demo-requests.ts';

const caller = 'spiffe://demo.svid.dev/ns/svid-demo/sa/client';
const body = (o: object) => JSON.stringify(o);
const good = { peer: caller, serial: 'AB12cd', peerSerial: '0f0e' };

// The demo reads the example client's stdout (a child process's output): every malformed line is a
// failed request or no request at all, never an exception and never a success.
describe('demo: parsing the example client output', () => {
  const table: [string, string, ReturnType<typeof parseClientLine> | 'failed'][] = [
    [
      'a 200 with the expected body',
      `7 200 ${body(good)}`,
      {
        n: 7,
        ok: true,
        status: '200',
        caller,
        callerSerial: '0f0e',
        serverSerial: 'ab12cd',
      },
    ],
    ['a 403', '3 403 {"error":"not allowed"}', 'failed'],
    ['a transport error', '4 error other side closed', 'failed'],
    ['a 200 whose body is not JSON', '5 200 <html>', 'failed'],
    ['a 200 without the caller', `5 200 ${body({ ...good, peer: undefined })}`, 'failed'],
    ['a 200 with a caller that is no SPIFFE ID', `5 200 ${body({ ...good, peer: 'CN=x' })}`, 'failed'],
    ['a 200 without the caller serial', `5 200 ${body({ ...good, peerSerial: undefined })}`, 'failed'],
    ['a 200 with a non-hex server serial', `5 200 ${body({ ...good, serial: 'zz' })}`, 'failed'],
    ['a 200 with a numeric serial', `5 200 ${body({ ...good, serial: 12 })}`, 'failed'],
    ['a 200 whose body is null', '5 200 null', 'failed'],
    ['a 200 whose body is an array', '5 200 []', 'failed'],
    ['a log line', 'svid: SVID 12 expires in 3 s', undefined],
    ['an empty line', '', undefined],
    ['a status that is not three digits', '5 20 {}', undefined],
  ];
  for (const [name, line, want] of table) {
    it(name, () => {
      const got = parseClientLine(line);
      if (want === 'failed') {
        expect(got?.ok).to.equal(false);
        expect(got?.n).to.be.a('number');
      } else expect(got).to.deep.equal(want);
    });
  }

  it('never throws, and reports success only for a 200 with a SPIFFE caller and hex serials', () => {
    fc.assert(
      fc.property(fc.string(), fc.jsonValue(), (s, v) => {
        for (const line of [s, `1 200 ${s}`, `1 200 ${JSON.stringify(v)}`]) {
          const r = parseClientLine(line);
          if (r?.ok) {
            expect(r.status).to.equal('200');
            expect(r.caller).to.match(/^spiffe:\/\//);
            expect(r.callerSerial).to.match(/^[0-9a-f]+$/);
            expect(r.serverSerial).to.match(/^[0-9a-f]+$/);
          }
        }
      }),
    );
  });

  it('tallies failures and each side’s distinct serials in order', () => {
    const t = new RequestTally();
    const ok = (n: number, c: string, s: string) =>
      parseClientLine(`${n} 200 ${body({ peer: caller, serial: s, peerSerial: c })}`);
    const seq = [
      ok(1, 'a1', 'b1'),
      ok(2, 'a1', 'b1'),
      ok(3, 'a2', 'b1'),
      parseClientLine('4 error x'),
      ok(5, 'a2', 'b2'),
    ];
    const fresh = seq.map((r) => (r ? t.add(r) : undefined));
    expect(fresh).to.deep.equal([
      { newCaller: true, newServer: true },
      { newCaller: false, newServer: false },
      { newCaller: true, newServer: false },
      { newCaller: false, newServer: false },
      { newCaller: false, newServer: true },
    ]);
    expect(t.callerSerials).to.deep.equal(['a1', 'a2']);
    expect(t.serverSerials).to.deep.equal(['b1', 'b2']);
    expect(t.summary()).to.equal(
      '5 requests, 1 failed; the client presented 2 SVIDs (1 rotation), the server 2 SVIDs (1 rotation)',
    );
    const third = seq[2];
    const thirdFresh = fresh[2];
    if (!third || !thirdFresh) throw new Error('the third request was not parsed');
    const line = formatRequest(third, 'spiffe://d/s', thirdFresh);
    expect(line).to.equal(
      `request 3: 200  caller ${caller} serial a2… (new)  →  server spiffe://d/s serial b1…`,
    );
  });
});
