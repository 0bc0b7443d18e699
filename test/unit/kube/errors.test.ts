import { expect } from 'chai';
import fc from 'fast-check';
import { KubeApiError, statusOf } from '../../../src/kube/errors.ts';

describe('KubeApiError and statusOf (reading the API server error bodies)', () => {
  const table: [string, string, ReturnType<typeof statusOf>][] = [
    [
      'a Status',
      '{"kind":"Status","reason":"NotFound","message":"secrets \\"a\\" not found"}',
      { reason: 'NotFound', message: 'secrets "a" not found' },
    ],
    ['a Status without reason', '{"kind":"Status","message":"m"}', { reason: '', message: 'm' }],
    [
      'a Status with a multi-line message',
      '{"kind":"Status","reason":"Invalid","message":"a\\n\\tb"}',
      { reason: 'Invalid', message: 'a b' },
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
