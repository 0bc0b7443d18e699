// A raw TLS connection with the current SVID that accepts the server only by its SPIFFE ID. Each call uses
// the SVID current at that moment, so connections opened after a rotation present the new one; connections
// already open keep theirs (TLS has no mid-connection credential swap).
import tls from 'node:tls';
import {
  clientTlsOptions,
  closeAtServerExpiry,
  identityCheck,
  refuseResumed,
  serverAuthorizer,
  type ClientOptions,
} from './client.ts';
import type { X509Source, X509Svid } from './source/x509-source.ts';

export type TlsConnectOptions = Omit<ClientOptions, 'maxConnectionAgeMs'> &
  Omit<
    tls.ConnectionOptions,
    'cert' | 'key' | 'ca' | 'secureContext' | 'checkServerIdentity' | 'rejectUnauthorized'
  >;

// One SecureContext per SVID and root set, never per connection (building one is slow on OpenSSL 3).
const contexts = new WeakMap<X509Source, { svid: X509Svid; roots: string; context: tls.SecureContext }>();

function contextFor(source: X509Source): tls.SecureContext {
  const svid = source.current();
  const roots = source
    .trustDomains()
    .map((td) => source.bundleFor(td))
    .map((b) => b?.roots.map((c) => c.fingerprint256).join(','))
    .join(';');
  const cached = contexts.get(source);
  if (cached && cached.svid === svid && cached.roots === roots) return cached.context;
  const context = tls.createSecureContext(clientTlsOptions(source, svid));
  contexts.set(source, { svid, roots, context });
  return context;
}

/**
 * `tls.connect` for SPIFFE: the SVID current at the call, the server accepted only as an SVID of its trust
 * domain's bundle allowed by the rule. The 'secureConnect' event means the server was accepted.
 */
export function connectTls(
  source: X509Source,
  opts: TlsConnectOptions,
  onSecure?: () => void,
): tls.TLSSocket {
  const { serverId, authorizeServer, observe, now, ...rest } = opts;
  const clientOpts: ClientOptions = { serverId, authorizeServer, observe, now };
  const authz = serverAuthorizer(clientOpts);
  const socket = tls.connect(
    {
      ...rest,
      secureContext: contextFor(source),
      checkServerIdentity: identityCheck(source, authz, clientOpts),
      rejectUnauthorized: true,
      session: undefined,
    },
    onSecure,
  );
  socket.disableRenegotiation();
  refuseResumed(socket);
  socket.once('secureConnect', () => closeAtServerExpiry(socket, now));
  return socket;
}
