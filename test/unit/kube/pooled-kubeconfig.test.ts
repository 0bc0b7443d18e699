import { expect } from 'chai';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as k8s from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../../src/kube/pooled-kubeconfig.ts';
import {
  createSelfSignedCa,
  issueSvid,
  loadCa,
  type IssuedSvid,
  type LoadedCa,
} from '../../../src/pki/index.ts';

// Real TLS with client certificates against a local HTTPS endpoint that answers like the API server's
// namespace list, counting the TLS connections it accepts.
describe('PooledKubeConfig', () => {
  let server: https.Server;
  let port: number;
  let connections = 0;
  let lastSerial = '';
  let client: IssuedSvid;
  let caPem: string;
  let ca: LoadedCa;

  before(async () => {
    const material = await createSelfSignedCa({ trustDomain: 'kube.test' });
    ca = await loadCa(material);
    caPem = material.certPem;
    const serving = await issueSvid(ca, {
      spiffeId: 'spiffe://kube.test/ns/default/sa/apiserver',
      dnsNames: ['localhost'],
      durationSeconds: 3600,
    });
    client = await issueSvid(ca, {
      spiffeId: 'spiffe://kube.test/ns/default/sa/operator',
      durationSeconds: 3600,
    });
    server = https.createServer(
      {
        cert: serving.certChainPem,
        key: serving.keyPem,
        ca: caPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        lastSerial = (req.socket as TLSSocket).getPeerCertificate().serialNumber.toLowerCase();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: {}, items: [] }));
      },
    );
    server.on('secureConnection', () => connections++);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const load = (kc: k8s.KubeConfig, cert = client) =>
    kc.loadFromOptions({
      clusters: [
        {
          name: 'c',
          server: `https://127.0.0.1:${port}`,
          tlsServerName: 'localhost',
          caData: Buffer.from(caPem).toString('base64'),
        },
      ],
      users: [
        {
          name: 'u',
          certData: Buffer.from(cert.certChainPem).toString('base64'),
          keyData: Buffer.from(cert.keyPem).toString('base64'),
        },
      ],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });

  const calls = async (kc: k8s.KubeConfig, n: number) => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    for (let i = 0; i < n; i++) await core.listNamespace();
  };

  it('opens a new TLS connection per request with client-node as it is (why this class exists)', async () => {
    const kc = new k8s.KubeConfig();
    load(kc);
    const before = connections;
    await calls(kc, 5);
    expect(connections - before).to.equal(5);
  });

  it('serves sequential requests over kept-alive connections', async () => {
    const kc = new PooledKubeConfig();
    load(kc);
    const before = connections;
    await calls(kc, 20);
    // undici may open a second connection while the first is still being released after a response.
    expect(connections - before).to.be.within(1, 2);
  });

  it('presents a rotated client certificate on the next request', async () => {
    const kc = new PooledKubeConfig();
    load(kc);
    await calls(kc, 3);
    expect(lastSerial).to.equal(client.serialNumber.toLowerCase());
    const before = connections;
    const rotated = await issueSvid(ca, {
      spiffeId: 'spiffe://kube.test/ns/default/sa/operator',
      durationSeconds: 3600,
    });
    load(kc, rotated);
    await calls(kc, 3);
    expect(connections - before).to.be.within(1, 2);
    expect(lastSerial).to.equal(rotated.serialNumber.toLowerCase());
  });
});
