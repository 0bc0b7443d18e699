// (c) An mTLS server and client from the installed package, through a kubelet-style rotation of the server's
// Secret volume (done by the test after the first line): node rotation.mjs SERVER_DIR CLIENT_DIR SERVER_ID CLIENT_ID
import { once } from 'node:events';
import https from 'node:https';
import { authorizeId, createHttpsServer, SvidAgent, SvidSource } from '@svid-operator/mtls';

const [serverDir, clientDir, serverId, clientId] = process.argv.slice(2);
const serverSource = await SvidSource.open(serverDir, { logger: null });
const clientSource = await SvidSource.open(clientDir, { logger: null });
const server = createHttpsServer(serverSource, { authorize: authorizeId(clientId) }, (req, res) =>
  res.end(JSON.stringify({ peer: req.spiffeId })),
);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const agent = new SvidAgent(clientSource, { serverId }, { keepAlive: false });
const get = () =>
  new Promise((resolve, reject) => {
    https
      .get(`https://127.0.0.1:${server.address().port}/`, { agent }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            peer: JSON.parse(body).peer,
            presented: res.socket.getPeerX509Certificate().serialNumber.toLowerCase(),
          }),
        );
      })
      .on('error', reject);
  });
const updated = once(serverSource, 'update');
console.log(JSON.stringify({ step: 'before', ...(await get()) }));
const [svid] = await updated;
console.log(JSON.stringify({ step: 'after', rotatedTo: svid.serialNumber, ...(await get()) }));
agent.destroy();
server.close();
serverSource.close();
clientSource.close();
