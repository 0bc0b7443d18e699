// Issue 13, item 1: a CA certificate whose extension contents are not valid DER is a user-caused failure
// like any other broken CA: a PkiError that names the extension and says how to fix it (the operator then
// reports CAUnavailable), never a raw ASN.1 parser exception.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { createSelfSignedCa, loadCa, PkiError } from '../../../src/pki/index.ts';
import {
  caWithExtensions,
  GOOD_BASIC_CONSTRAINTS_CA as GOOD_BASIC_CONSTRAINTS,
  GOOD_KEY_USAGE_CA as GOOD_KEY_USAGE,
  rawExtension as extension,
  TRUNCATED_BASIC_CONSTRAINTS,
} from '../../support/bad-extension-ca.ts';

describe('CA loading: extension contents that are not valid DER', () => {
  let keyPem: string;
  before(async () => {
    const ca = await createSelfSignedCa({ trustDomain: 'ext.example.org' });
    keyPem = ca.keyPem;
  });

  const cases: [string, () => Buffer[], RegExp][] = [
    [
      'basicConstraints is a truncated SEQUENCE',
      () => [TRUNCATED_BASIC_CONSTRAINTS, GOOD_KEY_USAGE],
      /basicConstraints extension is not valid DER/,
    ],
    [
      'basicConstraints holds an INTEGER instead of a SEQUENCE',
      () => [extension('2.5.29.19', Buffer.from([0x02, 0x01, 0x05])), GOOD_KEY_USAGE],
      /basicConstraints extension is not valid DER/,
    ],
    [
      'keyUsage is an empty value',
      () => [GOOD_BASIC_CONSTRAINTS, extension('2.5.29.15', Buffer.alloc(0))],
      /keyUsage extension is not valid DER/,
    ],
    [
      'subjectAltName has a length beyond its end',
      () => [
        GOOD_BASIC_CONSTRAINTS,
        GOOD_KEY_USAGE,
        extension('2.5.29.17', Buffer.from([0x30, 0x7f, 0x86, 0x01])),
      ],
      /subjectAltName extension is not valid DER/,
    ],
    [
      'subjectKeyIdentifier is a SEQUENCE of garbage',
      () => [
        GOOD_BASIC_CONSTRAINTS,
        GOOD_KEY_USAGE,
        extension('2.5.29.14', Buffer.from([0x30, 0x02, 0xff, 0xff])),
      ],
      /subjectKeyIdentifier extension is not valid DER/,
    ],
  ];

  for (const [name, extensions, message] of cases) {
    it(`refuses a CA whose ${name}, with a PkiError that says so`, async () => {
      const certPem = caWithExtensions(keyPem, extensions());
      // Node's X509Certificate accepts it: the extension contents are only read by the profile checks.
      expect(() => new X509Certificate(certPem)).not.to.throw();
      let caught: unknown;
      await loadCa({ certPem, keyPem }).catch((err: unknown) => (caught = err));
      expect(caught).to.be.instanceOf(PkiError);
      expect((caught as PkiError).code).to.equal('CaBadExtension');
      expect((caught as PkiError).message).to.match(message);
      expect((caught as PkiError).message).to.match(/reissue/);
      expect((caught as PkiError).message).not.to.contain('PRIVATE KEY');
    });
  }
});
