// (b) Type-checked with `tsc --noEmit` under "module": "nodenext" against the types the package ships.
import {
  authorizeId,
  authorizeMemberOf,
  createHttpsServer,
  SvidAgent,
  SvidDispatcher,
  SvidSource,
  type MtlsEvent,
  type X509Source,
} from '@svid-operator/mtls';

const source: X509Source = await SvidSource.open('/var/run/svid');
const onEvent = (e: MtlsEvent): void => {
  if (e.type === 'denied') console.log(`denied ${e.peerId} by ${e.rule}`);
  if (e.type === 'handshake-failed') console.log(`handshake failed: ${e.reason}`);
};
const server = createHttpsServer(
  source,
  { authorize: authorizeMemberOf('example.org'), observe: onEvent },
  (req, res) => res.end(req.spiffeId),
);
server.listen(8443);
const agent = new SvidAgent(source, {
  authorizeServer: authorizeId('spiffe://example.org/ns/shop/sa/payments'),
});
const dispatcher = new SvidDispatcher(source, { serverId: 'spiffe://example.org/ns/shop/sa/payments' });
const res = await fetch('https://payments.shop.svc:8443/', { dispatcher } as RequestInit);
console.log(
  res.status,
  source.current().notAfter.toISOString(),
  source.bundleFor('example.org')?.roots.length,
);
agent.destroy();
