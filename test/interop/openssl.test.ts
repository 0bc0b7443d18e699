import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createSelfSignedCa, issueSvid, loadCa, type KeySpec, type LoadedCa } from '../../src/pki/index.ts';
import { openssl, opensslCa, opensslIntermediate, startSServer } from '../support/pki-fixtures.ts';

const KEYS: KeySpec[] = [
  { algorithm: 'ECDSA', size: 256 },
  { algorithm: 'ECDSA', size: 384 },
  { algorithm: 'Ed25519' },
  { algorithm: 'RSA', size: 2048 },
  { algorithm: 'RSA', size: 3072 },
];
const name = (k: KeySpec) => (k.algorithm === 'Ed25519' ? 'Ed25519' : `${k.algorithm}-${k.size}`);

async function verify(ca: LoadedCa, key: KeySpec): Promise<void> {
  const svid = await issueSvid(ca, {
    spiffeId: 'spiffe://example.org/ns/a/sa/b',
    dnsNames: ['b.a.svc'],
    durationSeconds: 600,
    key,
  });
  const leaf = svid.certChainPem.slice(0, svid.certChainPem.indexOf('-----END CERTIFICATE-----') + 26);
  const chain = svid.certChainPem.slice(leaf.length);
  for (const purpose of ['sslclient', 'sslserver']) {
    const args = [
      'verify',
      '-CAfile',
      'bundle.pem',
      ...(chain ? ['-untrusted', 'chain.pem'] : []),
      '-purpose',
      purpose,
      'leaf.pem',
    ];
    const res = await openssl(args, {
      'bundle.pem': svid.bundlePem,
      'chain.pem': chain || '\n',
      'leaf.pem': leaf,
    });
    await res.cleanup();
    expect(res.output.trim(), `${name(key)} ${purpose}: ${res.output}`).to.equal('leaf.pem: OK');
  }
}

describe('interop: openssl', function () {
  this.timeout(60_000);

  for (const caKey of KEYS.slice(0, 4)) {
    it(`verifies SVIDs of every key type from a ${name(caKey)} root (sslclient and sslserver)`, async () => {
      const ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org', key: caKey }));
      for (const key of KEYS) await verify(ca, key);
    });
  }

  it('verifies SVIDs from an intermediate CA through the chain in tls.crt', async () => {
    const root = await opensslCa({
      keyArgs: ['-newkey', 'rsa:2048'],
      extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
    });
    const intermediate = await opensslIntermediate(root, [
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
    ]);
    const ca = await loadCa({ ...intermediate, bundlePem: root.certPem });
    for (const key of KEYS.slice(0, 3)) await verify(ca, key);
  });

  it('reads the empty subject and the critical URI SAN of an SVID as the X.509-SVID spec (§3.1) allows', async () => {
    const ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    const svid = await issueSvid(ca, { spiffeId: 'spiffe://example.org/ns/a/sa/b', durationSeconds: 600 });
    const res = await openssl(['x509', '-in', 'leaf.pem', '-noout', '-subject', '-ext', 'subjectAltName'], {
      'leaf.pem': svid.certChainPem,
    });
    await res.cleanup();
    expect(res.code, res.output).to.equal(0);
    expect(res.output).to.match(/^subject=\s*$/m);
    expect(res.output).to.match(
      /X509v3 Subject Alternative Name: critical\n\s*URI:spiffe:\/\/example\.org\/ns\/a\/sa\/b/,
    );
  });

  it('verifies SVIDs through two intermediates listed out of order with a stray certificate in tls.crt', async () => {
    const { buildCert } = await import('../support/cert-builder.ts');
    const root = await buildCert({ commonName: 'root', uris: ['spiffe://example.org'] });
    const int1 = await buildCert({ commonName: 'int1', issuer: root, uris: ['spiffe://example.org'] });
    const signing = await buildCert({ commonName: 'signing', issuer: int1, uris: ['spiffe://example.org'] });
    const stray = await buildCert({ commonName: 'stray', issuer: root });
    const ca = await loadCa(
      {
        certPem: signing.certPem + stray.certPem + int1.certPem,
        keyPem: signing.keyPem,
        bundlePem: root.certPem,
      },
      { trustDomain: 'example.org' },
    );
    expect(ca.chainPem).to.equal(signing.certPem + int1.certPem);
    for (const key of KEYS.slice(0, 2)) await verify(ca, key);
  });

  it('completes a mutual TLS handshake between openssl s_server and s_client with two SVIDs', async () => {
    const ca = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    const server = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/a/sa/server',
      durationSeconds: 600,
    });
    const client = await issueSvid(ca, {
      spiffeId: 'spiffe://example.org/ns/a/sa/client',
      durationSeconds: 600,
      key: { algorithm: 'Ed25519' },
    });
    const ok = await handshake(server, client);
    expect(ok.client, ok.client).to.contain('Verification: OK');
    expect(ok.code, ok.client).to.equal(0);
    // The server verified the client's SVID up to the root.
    expect(ok.server).to.match(/depth=0 \nverify return:1/);

    const otherCa = await loadCa(await createSelfSignedCa({ trustDomain: 'example.org' }));
    const stranger = await issueSvid(otherCa, {
      spiffeId: 'spiffe://example.org/ns/a/sa/client',
      durationSeconds: 600,
    });
    const refused = await handshake(server, stranger);
    expect(refused.server, refused.server).to.match(
      /unable to get local issuer certificate|certificate verify failed/,
    );
  });
});

/** One s_server (client certificate required) and one s_client connection on loopback. */
async function handshake(
  server: { certChainPem: string; keyPem: string; bundlePem: string },
  client: { certChainPem: string; keyPem: string },
): Promise<{ code: number; client: string; server: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'svid-handshake-'));
  const files = {
    'server.crt': server.certChainPem,
    'server.key': server.keyPem,
    'client.crt': client.certChainPem,
    'client.key': client.keyPem,
    'bundle.pem': server.bundlePem,
  };
  for (const [f, content] of Object.entries(files)) await writeFile(path.join(dir, f), content);
  // -Verify 1 requires a client certificate; -verify_return_error fails the handshake when it does not verify.
  const sServer = await startSServer(dir, [
    '-cert',
    'server.crt',
    '-key',
    'server.key',
    '-CAfile',
    'bundle.pem',
    '-Verify',
    '1',
    '-verify_return_error',
    '-naccept',
    '1',
    '-www',
  ]);
  const port = sServer.port;
  try {
    const c = spawn(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-cert',
        'client.crt',
        '-key',
        'client.key',
        '-CAfile',
        'bundle.pem',
        '-verify_return_error',
        '-brief',
      ],
      { cwd: dir },
    );
    let clientOut = '';
    c.stdout.on('data', (d: Buffer) => (clientOut += d.toString()));
    c.stderr.on('data', (d: Buffer) => (clientOut += d.toString()));
    // A refused s_client may exit before it reads its stdin: EPIPE on it is part of that outcome, which the
    // caller asserts from the output, not an error of the test.
    c.stdin.on('error', () => undefined);
    c.stdin.end('GET / HTTP/1.0\r\n\r\n');
    const timer = setTimeout(() => c.kill(), 15_000);
    const [code] = (await once(c, 'close')) as [number];
    clearTimeout(timer);
    // s_server reports the client's verification asynchronously; give it a moment to print it.
    for (
      let i = 0;
      i < 50 &&
      !/depth=0 \nverify return:1|verify error|certificate verify failed|unable to get/.test(
        sServer.output(),
      );
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return { code, client: clientOut, server: sServer.output() };
  } finally {
    sServer.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
