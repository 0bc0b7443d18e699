import { expect } from 'chai';
import fc from 'fast-check';
import { KubeApiError, statusOf } from '../../../src/kube/errors.ts';

describe('KubeApiError and statusOf (reading the API server error bodies)', () => {
  const table: [string, string, ReturnType<typeof statusOf>][] = [
    [
      'a Status',
      '{"kind":"Status","reason":"NotFound","message":"secrets \\"a\\" not found"}',
      { reason: 'NotFound', message: 'secrets "a" not found', retryAfterSeconds: 0 },
    ],
    [
      'a Status without reason',
      '{"kind":"Status","message":"m"}',
      { reason: '', message: 'm', retryAfterSeconds: 0 },
    ],
    [
      'a Status with a multi-line message',
      '{"kind":"Status","reason":"Invalid","message":"a\\n\\tb"}',
      { reason: 'Invalid', message: 'a b', retryAfterSeconds: 0 },
    ],
    [
      "the watch cache's 429",
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"storage is (re)initializing","reason":"TooManyRequests","details":{"retryAfterSeconds":1},"code":429}',
      { reason: 'TooManyRequests', message: 'storage is (re)initializing', retryAfterSeconds: 1 },
    ],
    ['another kind', '{"kind":"Secret","reason":"x"}', undefined],
    ['a JSON array', '[{"kind":"Status"}]', undefined],
    ['JSON null', 'null', undefined],
    ['HTML', '<html>502</html>', undefined],
    ['nothing', '', undefined],
  ];
  for (const [name, body, expected] of table) {
    it(`reads ${name}`, () => expect(statusOf(body)).to.deep.equal(expected));
  }

  const retryAfter: [string, unknown, number][] = [
    ['whole seconds', 5, 5],
    ['the longest believed', 60, 60],
    ['more than a minute, cut', 86_400, 60],
    ['zero', 0, 0],
    ['negative', -5, 0],
    ['a fraction', 1.5, 0],
    ['a string', '5', 0],
    ['null', null, 0],
    ['an object', { seconds: 5 }, 0],
    ['infinite (JSON null)', Number.POSITIVE_INFINITY, 0],
  ];
  for (const [name, value, expected] of retryAfter) {
    it(`reads details.retryAfterSeconds: ${name} -> ${expected}`, () => {
      const body = JSON.stringify({
        kind: 'Status',
        reason: 'TooManyRequests',
        details: { retryAfterSeconds: value },
      });
      expect(statusOf(body)?.retryAfterSeconds).to.equal(expected);
    });
  }

  it('property: retryAfterSeconds is always a whole number of seconds from 0 to 60', () => {
    fc.assert(
      fc.property(fc.anything(), (details) => {
        const r = statusOf(JSON.stringify({ kind: 'Status', details }) ?? '')?.retryAfterSeconds;
        expect(Number.isInteger(r)).to.equal(true);
        expect(r).to.be.within(0, 60);
      }),
      { numRuns: 500 },
    );
  });

  it('makes a bounded one-line message with the code from any body', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 599 }),
        fc.oneof(
          fc.string({ maxLength: 3000 }),
          fc
            .record({ kind: fc.constant('Status'), reason: fc.anything(), message: fc.anything() })
            .map((o) => JSON.stringify(o) ?? ''),
        ),
        (code, body) => {
          const err = new KubeApiError('GET', '/api/v1/x', code, body);
          expect(err.code).to.equal(code);
          expect(err.message).to.match(new RegExp(`^GET /api/v1/x: the API server answered ${code}`));
          expect(err.message).not.to.match(/[\n\r\t]/);
          expect(err.message.length).to.be.at.most(1100);
          expect(err.body.length).to.be.at.most(4000);
          expect(typeof err.reason).to.equal('string');
        },
      ),
      { numRuns: 300 },
    );
  });
});
