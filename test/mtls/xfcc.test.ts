import { expect } from 'chai';
import fc from 'fast-check';
import { parseXfcc, xfccClientUri } from '@svid-operator/mtls';

const PROXY = 'spiffe://td.example/ns/edge/sa/envoy';
const CLIENT = 'spiffe://td.example/ns/shop/sa/checkout';
const ADMIN = 'spiffe://td.example/ns/prod/sa/admin';
// What Envoy appends for a client it verified (forward_client_cert_details APPEND_FORWARD or SANITIZE_SET
// with set_current_client_cert_details { uri: true, subject: true }).
const envoyElement = (uri = CLIENT) => `By=${PROXY};Hash=ab12;Subject="CN=checkout,O=shop";URI=${uri}`;

describe('mTLS library: strict x-forwarded-client-cert parsing', () => {
  it('parses the grammar: several elements, quoted values with , ; = and \\", case-insensitive keys, DNS lists', () => {
    const elements = parseXfcc(
      `By=spiffe://a/x;hash=00;URI=spiffe://a/y;DNS=a.example;DNS=b.example, ` +
        `BY=${PROXY};Subject="CN=\\"quoted\\", O=a;b=c";uri=${CLIENT}`,
    );
    expect(elements).to.deep.equal([
      { by: 'spiffe://a/x', hash: '00', uri: 'spiffe://a/y', dns: ['a.example', 'b.example'] },
      { by: PROXY, subject: 'CN="quoted", O=a;b=c', uri: CLIENT, dns: [] },
    ]);
    expect(xfccClientUri(envoyElement(), PROXY)).to.deep.equal({ ok: true, uri: CLIENT });
  });

  // Each header as the service receives it from the proxy, and the expected outcome.
  const table: [string, string, { ok: true; uri: string } | { reason: RegExp }][] = [
    ['Envoy element alone (SANITIZE_SET)', envoyElement(), { ok: true, uri: CLIENT }],
    [
      'client element, then Envoy (APPEND_FORWARD)',
      `URI=${ADMIN},${envoyElement()}`,
      { ok: true, uri: CLIENT },
    ],
    [
      'the reported attack: an open quote swallows the element Envoy appends',
      `URI=${ADMIN};x=",${envoyElement()}`,
      { reason: /unknown key "x"/ },
    ],
    [
      'open quote in a known key',
      `URI=${ADMIN};Subject=",${envoyElement()}`,
      { reason: /unbalanced double quote|expected ";" or ","/ },
    ],
    ['unbalanced quote at the end', `${envoyElement()};Subject="CN=x`, { reason: /unbalanced double quote/ }],
    ['escaped closing quote', `Subject="a\\",${envoyElement()}`, { reason: /unbalanced|expected/ }],
    [
      'two URI= in the element Envoy added',
      `${envoyElement()};URI=${ADMIN}`,
      { reason: /URI= appears twice/ },
    ],
    ['two URI= differing in case', `${envoyElement()};uri=${ADMIN}`, { reason: /appears twice/ }],
    ['two By=', `${envoyElement()};By=${PROXY}`, { reason: /By= appears twice/ }],
    [
      'By= of another proxy',
      `By=spiffe://td.example/ns/x/sa/evil;URI=${ADMIN}`,
      { reason: /added by spiffe:\/\/td.example\/ns\/x\/sa\/evil/ },
    ],
    [
      'client element last (proxy forwarded without appending)',
      `${envoyElement()},URI=${ADMIN}`,
      { ok: true, uri: ADMIN },
    ],
    ['no URI= in the last element', `By=${PROXY};Hash=00`, { reason: /without a URI SAN/ }],
    ['empty header', '', { reason: /expected a key/ }],
    ['empty element', `${envoyElement()},`, { reason: /expected a key/ }],
    ['empty element between', `URI=${ADMIN},,${envoyElement()}`, { reason: /expected a key/ }],
    ['missing =', `URI${ADMIN}`, { reason: /expected "="/ }],
    ['quote inside an unquoted value', `URI=spiffe://td.example/a"b`, { reason: /in an unquoted value/ }],
    ['= inside an unquoted value', `URI=spiffe://td.example/a=b`, { reason: /in an unquoted value/ }],
    ['backslash in an unquoted value', `URI=spiffe://td.example/a\\b`, { reason: /in an unquoted value/ }],
    ['garbage after a quoted value', `Subject="a"b;URI=${CLIENT}`, { reason: /expected ";" or ","/ }],
    ['unknown key', `${envoyElement()};Role=admin`, { reason: /unknown key "Role"/ }],
    ['key with a space inside', `U RI=${ADMIN}`, { reason: /expected "="/ }],
    ['NUL in a value', `URI=spiffe://td.example/a\u0000b`, { ok: true, uri: 'spiffe://td.example/a\u0000b' }],
    ['oversized header', `Hash=${'a'.repeat(70_000)};URI=${CLIENT}`, { reason: /longer than 65536/ }],
    [
      'too many elements',
      `${Array(70).fill('Hash=1').join(',')},${envoyElement()}`,
      { reason: /more than 64 elements/ },
    ],
  ];
  for (const [name, header, expected] of table) {
    it(`${'ok' in expected ? 'accepts' : 'refuses'}: ${name}`, () => {
      const result = xfccClientUri(header, PROXY);
      if ('ok' in expected) expect(result).to.deep.equal(expected);
      else {
        expect(result.ok).to.equal(false);
        expect((result as { reason: string }).reason).to.match(expected.reason);
      }
    });
  }

  it('property: whatever a client puts in the header, the only identity that comes out is the one the proxy appended', () => {
    const tokens = fc.constantFrom(
      'URI=',
      'uri=',
      'By=',
      'Hash=',
      'Subject=',
      'DNS=',
      'x=',
      ADMIN,
      PROXY,
      'spiffe://td.example/',
      '"',
      '\\"',
      '\\',
      ',',
      ';',
      '=',
      ' ',
      '\t',
    );
    const clientPart = fc
      .array(fc.oneof(tokens, fc.string({ maxLength: 8 })), { maxLength: 20 })
      .map((p) => p.join(''));
    const vouched = fc.constantFrom(CLIENT, 'spiffe://td.example/ns/shop/sa/cart', undefined);
    fc.assert(
      fc.property(clientPart, vouched, (prefix, uri) => {
        // APPEND_FORWARD: the client's header, then the element Envoy adds for the client it verified (with
        // no URI= when the client certificate has no URI SAN).
        const appended = uri ? envoyElement(uri) : `By=${PROXY};Hash=ab12`;
        const header = prefix === '' ? appended : `${prefix},${appended}`;
        const result = xfccClientUri(header, PROXY);
        if (result.ok) return result.uri === uri;
        return true;
      }),
      { numRuns: 5000 },
    );
  });
});
