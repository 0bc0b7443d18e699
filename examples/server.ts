// Example mTLS server: `npm run example:server -- (--svid-dir DIR | --pod-certificate-dir DIR) --port PORT (--allow SPIFFE_ID... | --allow-any)`
// Answers every request with {"peer": <client SPIFFE ID>, "serial": <serial of this server's current SVID>,
// "peerSerial": <serial of the certificate the client presented on this connection>}.
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import { authorizeAny, authorizeId, createHttpsServer } from '@svid-operator/mtls';
import { fileSourceOptions, fileSourceUsage, openFileSource } from './file-source.ts';

const { values } = parseArgs({
  options: {
    ...fileSourceOptions,
    port: { type: 'string', default: '8443' },
    host: { type: 'string', default: '0.0.0.0' },
    allow: { type: 'string', multiple: true, default: [] },
    'allow-any': { type: 'boolean', default: false },
  },
});
const allow = values.allow ?? [];
const opening = openFileSource(values);
if (!opening || (allow.length === 0) === !values['allow-any']) {
  // Secure by default: which clients may call is always said explicitly.
  console.error(`usage: server ${fileSourceUsage} --port PORT (--allow SPIFFE_ID... | --allow-any)`);
  process.exit(2);
}

const source = await opening;
source.on('update', (svid) =>
  console.log(JSON.stringify({ event: 'rotated', serial: svid.serialNumber, notAfter: svid.notAfter })),
);
const server = createHttpsServer(
  source,
  { authorize: allow.length ? authorizeId(...allow) : authorizeAny() },
  (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const peerSerial = (req.socket as TLSSocket).getPeerCertificate().serialNumber.toLowerCase();
    res.end(JSON.stringify({ peer: req.spiffeId, serial: source.current().serialNumber, peerSerial }));
  },
);
server.listen(Number(values.port), values.host, () => {
  console.log(
    JSON.stringify({
      event: 'listening',
      port: Number(values.port),
      spiffeId: source.spiffeId,
      serial: source.current().serialNumber,
    }),
  );
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
