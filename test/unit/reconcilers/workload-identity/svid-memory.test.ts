import { expect } from 'chai';
import {
  createSelfSignedCa,
  inspectSvid,
  issuedSvidFacts,
  issueSvid,
  loadCa,
  verifySvid,
  type IssuedSvid,
  type LoadedCa,
} from '../../../../src/pki/index.ts';
import { svidData } from '../../../../src/reconcilers/workload-identity/secret.ts';
import { dropSvidData, droppedSvidContent } from '../../../../src/reconcilers/workload-identity/slim.ts';
import { SvidMemory, svidContent } from '../../../../src/reconcilers/workload-identity/svid-memory.ts';

const decoded = (data: Record<string, string>) => ({
  certChainPem: Buffer.from(data['tls.crt'] ?? '', 'base64').toString(),
  keyPem: Buffer.from(data['tls.key'] ?? '', 'base64').toString(),
  bundlePem: Buffer.from(data['ca.crt'] ?? '', 'base64').toString(),
});

describe('SVID memory (what the operator knows about each managed Secret)', () => {
  let ca: LoadedCa;
  let newCa: LoadedCa;
  let svid: IssuedSvid;
  let stranger: IssuedSvid;
  const expected = {
    spiffeId: 'spiffe://example.org/ns/a/sa/b',
    dnsNames: ['b'],
    key: { algorithm: 'ECDSA', size: 256 } as const,
    durationSeconds: 600,
    renewBeforeSeconds: 200,
    uid: 'u',
  };

  before(async () => {
    ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    newCa = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    svid = await issueSvid(ca, expected);
    stranger = await issueSvid(newCa, expected);
  });

  /** A memory that counts how often it had to parse. */
  const counting = (max?: number) => {
    const calls = { n: 0 };
    const memory = new SvidMemory(max, (crt, key, c) => {
      calls.n++;
      return inspectSvid(crt, key, c);
    });
    return { memory, calls };
  };

  it('never parses its own write again', () => {
    const { memory, calls } = counting();
    const data = svidData(svid);
    memory.wrote('a/b-svid', data, ca, issuedSvidFacts(svid, expected.dnsNames, expected.key));
    // As the watch delivers it: a different object with equal strings.
    const delivered = JSON.parse(JSON.stringify(data)) as Record<string, string>;
    for (let i = 0; i < 3; i++) {
      const facts = memory.facts('a/b-svid', delivered, decoded(delivered), ca);
      expect(verifySvid(decoded(delivered), expected, ca, { facts }).action).to.equal('keep');
    }
    expect(calls.n).to.equal(0);
    expect(memory.stats).to.deep.equal({ hits: 3, misses: 0 });
  });

  it('re-verifies a Secret whose data someone changed after our write, instead of trusting memory', () => {
    const { memory, calls } = counting();
    memory.wrote('a/b-svid', svidData(svid), ca, issuedSvidFacts(svid, expected.dnsNames, expected.key));
    // Someone put another CA's SVID (valid in itself) into the Secret.
    const swapped = svidData(stranger);
    const facts = memory.facts('a/b-svid', swapped, decoded(swapped), ca);
    expect(calls.n).to.equal(1);
    const decision = verifySvid(decoded(swapped), expected, ca, { facts });
    expect(decision).to.deep.include({ action: 'issue', reason: 'WrongIssuer' });
    // Someone swapped only the key.
    const keySwapped = { ...svidData(svid), 'tls.key': swapped['tls.key'] as string };
    const keyFacts = memory.facts('a/b-svid', keySwapped, decoded(keySwapped), ca);
    expect(verifySvid(decoded(keySwapped), expected, ca, { facts: keyFacts })).to.deep.include({
      action: 'issue',
      reason: 'KeyMismatch',
    });
    // Someone truncated the certificate.
    const broken = {
      ...svidData(svid),
      'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA').toString('base64'),
    };
    const brokenFacts = memory.facts('a/b-svid', broken, decoded(broken), ca);
    expect(verifySvid(decoded(broken), expected, ca, { facts: brokenFacts })).to.deep.include({
      action: 'issue',
      reason: 'Corrupt',
    });
    expect(calls.n).to.equal(3);
  });

  it('judges every Secret again once the CA changed', () => {
    const { memory, calls } = counting();
    const data = svidData(svid);
    memory.wrote('a/b-svid', data, ca, issuedSvidFacts(svid, expected.dnsNames, expected.key));
    const facts = memory.facts('a/b-svid', data, decoded(data), newCa);
    expect(calls.n).to.equal(1);
    expect(verifySvid(decoded(data), expected, newCa, { facts })).to.deep.include({
      action: 'issue',
      reason: 'WrongIssuer',
    });
  });

  it('parses an unknown Secret once, then answers from memory until it changes', () => {
    const { memory, calls } = counting();
    const data = svidData(svid);
    for (let i = 0; i < 3; i++) memory.facts('a/b-svid', data, decoded(data), ca);
    expect(calls.n).to.equal(1);
  });

  it('gives no facts when tls.crt or tls.key is missing (verification reports Missing)', () => {
    const { memory, calls } = counting();
    const data = { ...svidData(svid), 'tls.key': '' };
    expect(memory.facts('a/b-svid', data, decoded(data), ca)).to.equal(undefined);
    expect(calls.n).to.equal(0);
  });

  it('holds at most its bound of Secrets, and forgets a deleted one', () => {
    const { memory, calls } = counting(2);
    const data = svidData(svid);
    for (const k of ['a/1', 'a/2', 'a/3']) memory.facts(k, data, decoded(data), ca);
    expect(memory.size).to.equal(2);
    expect(calls.n).to.equal(3);
    memory.facts('a/1', data, decoded(data), ca); // evicted: parsed again
    expect(calls.n).to.equal(4);
    memory.forget('a/1');
    expect(memory.size).to.equal(1);
  });

  describe('a cached Secret without its tls.crt and tls.key (dropped once known)', () => {
    it('answers from the digest alone while content and CA stay the same, and verifies as kept', () => {
      const { memory, calls } = counting();
      const data = svidData(svid);
      memory.wrote('a/b-svid', data, ca, issuedSvidFacts(svid, expected.dnsNames, expected.key));
      const cached = { metadata: { name: 'b-svid' }, data: { ...data } };
      const content = svidContent(cached.data);
      dropSvidData(cached, content);
      expect(cached.data).to.deep.equal({ 'ca.crt': data['ca.crt'] });
      expect(droppedSvidContent(cached)).to.equal(content);
      const facts = memory.known('a/b-svid', content, ca);
      expect(facts).to.not.equal(undefined);
      const held = { bundlePem: decoded(data).bundlePem };
      expect(verifySvid(held, expected, ca, { facts }).action).to.equal('keep');
      expect(calls.n).to.equal(0);
    });

    it('knows nothing for other content, another CA, a forgotten or an evicted Secret (it must be read again)', () => {
      const { memory } = counting(2);
      const data = svidData(svid);
      memory.wrote('a/b-svid', data, ca, issuedSvidFacts(svid, expected.dnsNames, expected.key));
      const content = svidContent(data);
      expect(memory.known('a/b-svid', svidContent(svidData(stranger)), ca)).to.equal(undefined);
      expect(memory.known('a/b-svid', svidContent({ ...data, 'tls.key': 'eA==' }), ca)).to.equal(undefined);
      expect(memory.known('a/b-svid', content, newCa)).to.equal(undefined);
      expect(memory.known('a/other', content, ca)).to.equal(undefined);
      // Evicted by two other Secrets (bound 2).
      for (const k of ['a/1', 'a/2']) memory.wrote(k, data, ca, issuedSvidFacts(svid, ['b'], expected.key));
      expect(memory.known('a/b-svid', content, ca)).to.equal(undefined);
      memory.forget('a/1');
      expect(memory.known('a/1', content, ca)).to.equal(undefined);
    });

    it('tells tls.crt and tls.key apart in the digest (moving bytes between them changes it)', () => {
      expect(svidContent({ 'tls.crt': 'ab', 'tls.key': 'c' })).to.not.equal(
        svidContent({ 'tls.crt': 'a', 'tls.key': 'bc' }),
      );
      expect(svidContent({ 'tls.crt': 'a' })).to.not.equal(svidContent({ 'tls.crt': 'a', 'tls.key': '' }));
    });

    it('drops once: a second drop does not replace the recorded digest', () => {
      const cached = { data: { 'tls.crt': 'YQ==', 'tls.key': 'Yg==' } as Record<string, string> };
      dropSvidData(cached, 'first');
      dropSvidData(cached, 'second');
      expect(droppedSvidContent(cached)).to.equal('first');
      expect(cached.data).to.deep.equal({});
    });

    it('without facts, a Secret lacking tls.crt or tls.key is still Missing', () => {
      const d = decoded(svidData(svid));
      expect(verifySvid({ bundlePem: d.bundlePem }, expected, ca)).to.deep.include({
        action: 'issue',
        reason: 'Missing',
      });
    });
  });
});
