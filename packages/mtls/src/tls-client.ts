// A raw TLS connection with the current SVID that accepts the server only by its SPIFFE ID. Each call uses
// the SVID current at that moment, so connections opened after a rotation present the new one; connections
// already open keep theirs (TLS has no mid-connection credential swap).
import tls from 'node:tls';
import {
  clientContext,
  identityCheck,
  recheckResumed,
  serverAuthorizer,
  type ClientOptions,
} from './client.ts';
import type { Svid } from './source.ts';
import type { SvidProvider } from './svid-provider.ts';

export type TlsConnectOptions = ClientOptions &
  Omit<
    tls.ConnectionOptions,
    'cert' | 'key' | 'ca' | 'secureContext' | 'checkServerIdentity' | 'rejectUnauthorized'
  >;

// One SecureContext per SVID generation, never per connection (building one is slow on OpenSSL 3).
const contexts = new WeakMap<Svid, tls.SecureContext>();

/** `tls.connect` for SPIFFE. The 'secureConnect' event means the server's SPIFFE ID was accepted. */
export function connectTls(
  source: SvidProvider,
  opts: TlsConnectOptions,
  onSecure?: () => void,
): tls.TLSSocket {
  const { serverId, authorizeServer, ...rest } = opts;
  const authz = serverAuthorizer({ serverId, authorizeServer });
  const svid = source.current();
  let context = contexts.get(svid);
  if (!context) {
    context = clientContext(svid);
    contexts.set(svid, context);
  }
  const socket = tls.connect(
    { ...rest, secureContext: context, checkServerIdentity: identityCheck(authz), rejectUnauthorized: true },
    onSecure,
  );
  recheckResumed(socket, authz);
  return socket;
}
