// The library's DER reader (packages/mtls/src/der.ts), which replaced @peculiar/asn1-x509 in the operator's
// profile() (issue 17: the operator no longer loads it) and the library's own lax reader of keyUsage. It
// must answer as the @peculiar version did on every certificate the tests use, refuse what is not DER with
// a DerError (never a RangeError or a misread), and read back what the encoder writes.
import { expect } from 'chai';
import fc from 'fast-check';
import { readdir, readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  GeneralName,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { createSelfSignedCa, issueSvid, loadCa, PkiError } from '../../../src/pki/index.ts';
import { oid, sequence, tlv } from '../../../src/pki/der.ts';
import {
  certificateExtensions,
  CRL_SIGN,
  DerError,
  KEY_CERT_SIGN,
  keyUsageBits,
  readBasicConstraintsCa,
  readElement,
  readExtKeyUsage,
  readKeyUsage,
  readOid,
  readSubjectAltNames,
  single,
} from '@svid-operator/mtls/der';
import { profile, type CertificateProfile } from '../../../src/pki/x509.ts';
import { buildCert } from '../../support/cert-builder.ts';
import {
  caWithExtensions,
  GOOD_BASIC_CONSTRAINTS_CA,
  GOOD_KEY_USAGE_CA,
  rawExtension,
  TRUNCATED_BASIC_CONSTRAINTS,
} from '../../support/bad-extension-ca.ts';

/** profile() as it was with @peculiar/asn1-x509 (src/pki/x509.ts before issue 17's mem3), the reference. */
function peculiarProfile(cert: X509Certificate): CertificateProfile | 'error' {
  const result: CertificateProfile = {
    isCa: undefined,
    basicConstraintsCritical: false,
    keyUsage: undefined,
    keyUsageCritical: false,
    extKeyUsage: undefined,
    uris: [],
    dnsNames: [],
    otherSans: 0,
    subjectAltNameCritical: false,
    subjectKeyId: undefined,
  };
  try {
    for (const ext of AsnConvert.parse(cert.raw, Certificate).tbsCertificate.extensions ?? []) {
      const value = ext.extnValue.buffer;
      switch (ext.extnID) {
        case id_ce_basicConstraints:
          result.isCa = AsnConvert.parse(value, BasicConstraints).cA;
          result.basicConstraintsCritical = ext.critical;
          break;
        case id_ce_keyUsage:
          result.keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
          result.keyUsageCritical = ext.critical;
          break;
        case id_ce_extKeyUsage:
          result.extKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)];
          break;
        case id_ce_subjectAltName:
          result.subjectAltNameCritical = ext.critical;
          for (const name of AsnConvert.parse(value, SubjectAlternativeName)) {
            if (name.uniformResourceIdentifier !== undefined)
              result.uris.push(name.uniformResourceIdentifier);
            else if (name.dNSName !== undefined) result.dnsNames.push(name.dNSName);
            else result.otherSans++;
          }
          break;
        case id_ce_subjectKeyIdentifier:
          result.subjectKeyId = Buffer.from(AsnConvert.parse(value, SubjectKeyIdentifier).buffer);
          break;
      }
    }
  } catch {
    return 'error';
  }
  return result;
}

const ours = (cert: X509Certificate): CertificateProfile | 'error' => {
  try {
    return profile(cert);
  } catch (err) {
    expect(err).to.be.instanceOf(PkiError);
    expect((err as PkiError).code).to.equal('CaBadExtension');
    return 'error';
  }
};

/** Every PEM certificate written into the test sources (fixtures of other PKI tests). */
async function certificatesInTests(): Promise<X509Certificate[]> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts'));
  const out: X509Certificate[] = [];
  for (const f of files) {
    const text = await readFile(path.join(root, f), 'utf8');
    for (const m of text.matchAll(
      /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s\\n]+-----END CERTIFICATE-----/g,
    )) {
      try {
        out.push(new X509Certificate(m[0].replace(/\\n/g, '\n')));
      } catch {
        // a deliberately corrupt fixture: not a certificate node:crypto reads, so profile() never sees it
      }
    }
  }
  return out;
}

describe('DER reader (@svid-operator/mtls/der): the X.509 extensions profile() and the SVID rules read, without @peculiar', () => {
  const vectors: [string, X509Certificate][] = [];

  before(async function () {
    this.timeout(60_000);
    const caPem = await createSelfSignedCa({ trustDomain: 'der.example.org' });
    const ca = await loadCa(caPem);
    vectors.push(['self-signed CA', new X509Certificate(caPem.certPem)]);
    for (const key of [
      { algorithm: 'ECDSA', size: 256 },
      { algorithm: 'ECDSA', size: 384 },
      { algorithm: 'Ed25519' },
      { algorithm: 'RSA', size: 2048 },
    ] as const) {
      const svid = await issueSvid(ca, {
        spiffeId: 'spiffe://der.example.org/ns/a/sa/b',
        dnsNames: ['a.example.org', 'b.a.svc'],
        durationSeconds: 3600,
        key,
      });
      vectors.push([`SVID ${key.algorithm}`, new X509Certificate(svid.certChainPem)]);
    }
    const root = await buildCert({ commonName: 'root', uris: ['spiffe://der.example.org'] });
    vectors.push(['built root', root.cert]);
    vectors.push([
      'built leaf, no keyUsage',
      (await buildCert({ commonName: 'leaf', issuer: root, ca: false, keyUsage: 'none' })).cert,
    ]);
    const bad: [string, Buffer[]][] = [
      ['good CA extensions', [GOOD_BASIC_CONSTRAINTS_CA, GOOD_KEY_USAGE_CA]],
      ['truncated basicConstraints', [TRUNCATED_BASIC_CONSTRAINTS, GOOD_KEY_USAGE_CA]],
      ['basicConstraints INTEGER', [rawExtension('2.5.29.19', Buffer.from([0x02, 0x01, 0x05]))]],
      ['empty keyUsage', [rawExtension('2.5.29.15', Buffer.alloc(0))]],
      ['SAN past its end', [rawExtension('2.5.29.17', Buffer.from([0x30, 0x7f, 0x86, 0x01]))]],
      ['SKI SEQUENCE', [rawExtension('2.5.29.14', Buffer.from([0x30, 0x02, 0xff, 0xff]))]],
      ['empty basicConstraints', [rawExtension('2.5.29.19', sequence())]],
      ['basicConstraints with pathLen', [rawExtension('2.5.29.19', Buffer.from('30060101ff020100', 'hex'))]],
      ['EKU', [rawExtension('2.5.29.37', sequence(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2')))]],
      [
        'SAN other names',
        [rawExtension('2.5.29.17', Buffer.from('3008810161870400000000', 'hex').subarray(0, 10))],
      ],
      ['unknown extension', [rawExtension('1.2.3.4', Buffer.from([0x05, 0x00]))]],
    ];
    for (const [name, exts] of bad)
      vectors.push([name, new X509Certificate(caWithExtensions(caPem.keyPem, exts))]);
    for (const [i, cert] of (await certificatesInTests()).entries())
      vectors.push([`test fixture ${i}`, cert]);
  });

  it('gives the same profile as @peculiar/asn1-x509 on every test certificate', () => {
    expect(vectors.length).to.be.greaterThan(15);
    let errors = 0;
    for (const [name, cert] of vectors) {
      const expected = peculiarProfile(cert);
      if (expected === 'error') errors++;
      expect(ours(cert), name).to.deep.equal(expected);
    }
    // Both sides of the comparison were exercised.
    expect(errors).to.be.greaterThan(3);
  });

  it("keyUsageBits (the library's SVID rules) reads what profile() reads, on every test certificate", () => {
    let withKeyUsage = 0;
    for (const [name, cert] of vectors) {
      const expected = peculiarProfile(cert);
      if (expected === 'error') continue;
      let bits: number | undefined | 'error';
      try {
        bits = keyUsageBits(cert.raw);
      } catch (err) {
        expect(err, name).to.be.instanceOf(DerError);
        bits = 'error';
      }
      // keyUsageBits reads keyUsage alone, so a certificate whose other extensions are broken still answers.
      if (bits === 'error') expect(expected.keyUsage, name).to.not.equal(undefined);
      else expect(bits, name).to.equal(expected.keyUsage);
      if (expected.keyUsage !== undefined) withKeyUsage++;
    }
    expect(withKeyUsage).to.be.greaterThan(5);
    expect([KEY_CERT_SIGN, CRL_SIGN]).to.deep.equal([KeyUsageFlags.keyCertSign, KeyUsageFlags.cRLSign]);
  });

  const table: [string, string, (der: Uint8Array) => unknown, RegExp][] = [
    ['an indefinite length', '3080', (d) => single(d, 0x30), /indefinite/],
    ['a non-minimal long length', '30810100', (d) => single(d, 0x30), /minimally/],
    ['a length with a leading zero byte', '3082000100', (d) => single(d, 0x30), /minimally/],
    ['a length of 5 bytes', '30850000000001', (d) => single(d, 0x30), /more than 4/],
    ['contents past the end', '300301', (d) => single(d, 0x30), /past/],
    ['a header cut short', '30', (d) => single(d, 0x30), /past its end/],
    ['trailing bytes', '300000', (d) => single(d, 0x30), /after the element/],
    ['a high tag number', '1f0100', (d) => single(d, 0x1f), /high tag/],
    ['another tag', '3100', (d) => single(d, 0x30), /tag 0x31/],
    ['an empty OID', '0600', (d) => readOid(d, readElement(d, 0, d.length)), /empty/],
    ['an OID cut inside an arc', '060181', (d) => readOid(d, readElement(d, 0, d.length)), /inside an arc/],
    [
      'an OID arc with a leading 0x80',
      '0602802a',
      (d) => readOid(d, readElement(d, 0, d.length)),
      /minimally/,
    ],
    ['a BOOLEAN of 0x01', '3003010101', readBasicConstraintsCa, /0x00 or 0xff/],
    ['a BOOLEAN of two bytes', '30040102ffff', readBasicConstraintsCa, /one byte/],
    ['basicConstraints with three fields', '3009010100020100020100', readBasicConstraintsCa, /more than two/],
    ['basicConstraints with pathLen before cA', '3006020100010100', readBasicConstraintsCa, /other than cA/],
    ['keyUsage with 8 unused bits', '03020880', readKeyUsage, /unused-bits/],
    ['keyUsage with no bytes and unused bits', '030101', readKeyUsage, /unused-bits/],
    ['keyUsage of 5 bytes', '030600ffffffffff', readKeyUsage, /32 bits/],
    ['a GeneralName of tag [9]', '30028900', readSubjectAltNames, /not a GeneralName/],
    ['EKU holding an INTEGER', '3003020101', readExtKeyUsage, /tag 0x2/],
    ['extensions of the wrong shape', '300a3008a30630043002', certificateExtensions, /./],
  ];
  for (const [name, hex, read, reason] of table) {
    it(`refuses ${name} with a DerError that says why`, () => {
      expect(() => read(Buffer.from(hex, 'hex')))
        .to.throw(DerError)
        .with.property('message')
        .that.matches(reason);
    });
  }

  it('reads keyUsage bits as @peculiar numbered them (bit i is 2^i) for every 9-bit value', () => {
    for (let n = 0; n < 512; n++) {
      const der = new Uint8Array(AsnConvert.serialize(new KeyUsage(n)));
      expect(readKeyUsage(der), String(n)).to.equal(n);
    }
  });

  it('property: any bytes either read as an element inside them or fail with a DerError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          const e = readElement(bytes, 0, bytes.length);
          return e.start >= 2 && e.start <= e.end && e.end <= bytes.length;
        } catch (err) {
          return err instanceof DerError;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: the readers never throw anything but a DerError on arbitrary bytes', () => {
    const readers = [
      readBasicConstraintsCa,
      readKeyUsage,
      readExtKeyUsage,
      readSubjectAltNames,
      certificateExtensions,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.constantFrom(...readers), (bytes, read) => {
        try {
          read(bytes);
        } catch (err) {
          if (!(err instanceof DerError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('property: reads back what der.ts writes (any tag, contents up to 70,000 bytes)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x1e }),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 70_000 }),
        (tagNumber, head, pad) => {
          const contents = Buffer.concat([Buffer.from(head), Buffer.alloc(pad % 3 === 0 ? pad : 0)]);
          const der = tlv(0x80 | tagNumber, contents);
          const e = single(der, 0x80 | tagNumber);
          return Buffer.from(der.subarray(e.start, e.end)).equals(contents);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: OIDs round-trip through der.ts oid()', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 39 }),
        fc.array(fc.integer({ min: 0, max: 2 ** 31 }), { maxLength: 8 }),
        (a, b, rest) => {
          const dotted = [a, b, ...rest].join('.');
          const der = oid(dotted);
          return readOid(der, readElement(der, 0, der.length)) === dotted;
        },
      ),
    );
  });

  it('property: subjectAltName answers as @peculiar on generated URI, DNS and IP names', () => {
    const name = fc.oneof(
      fc.stringMatching(/^[a-z0-9.:/-]{0,40}$/).map((u) => new GeneralName({ uniformResourceIdentifier: u })),
      fc.stringMatching(/^[a-z0-9.-]{0,40}$/).map((d) => new GeneralName({ dNSName: d })),
      fc
        .uint8Array({ minLength: 4, maxLength: 4 })
        .map((ip) => new GeneralName({ iPAddress: [...ip].join('.') })),
    );
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 6 }), (names) => {
        const der = new Uint8Array(AsnConvert.serialize(new SubjectAlternativeName(names)));
        const expected = { uris: [] as string[], dnsNames: [] as string[], other: 0 };
        for (const n of AsnConvert.parse(der, SubjectAlternativeName)) {
          if (n.uniformResourceIdentifier !== undefined) expected.uris.push(n.uniformResourceIdentifier);
          else if (n.dNSName !== undefined) expected.dnsNames.push(n.dNSName);
          else expected.other++;
        }
        expect(readSubjectAltNames(der)).to.deep.equal(expected);
      }),
      { numRuns: 300 },
    );
  });
});
