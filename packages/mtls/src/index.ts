// @svid-operator/mtls, svid-operator's in-pod library: mutual TLS with SPIFFE X.509-SVIDs from a mounted Secret, reloaded on
// rotation. Depends on node: builtins and undici only, never on a Kubernetes client.
export {
  SvidError,
  SvidSource,
  validateSvid,
  type Svid,
  type SvidSourceOptions,
  type SvidFiles,
} from './source.ts';
export {
  authorizer,
  parseSubjectAltName,
  peerSpiffeId,
  spiffeIdOf,
  trustDomainOf,
  type Authorizer,
  type AuthorizeOptions,
} from './identity.ts';
export {
  checkPeer,
  createHttp2Server,
  createHttpsServer,
  createTlsServer,
  serverTlsOptions,
  type ExtraTlsOptions,
  type ServerOptions,
  type SpiffeRequest,
} from './server.ts';
export { SvidAgent, SvidDispatcher, type ClientOptions } from './client.ts';
export {
  callerSpiffeId,
  expressSpiffeAuth,
  fastifySpiffeAuth,
  spiffeIdFromXfcc,
  type IdentityOptions,
  type TrustedProxyOptions,
} from './middleware.ts';
export {
  SpiffeIdError,
  isSpiffeId,
  parseSpiffeId,
  pathProblem,
  trustDomainProblem,
  validateTrustDomain,
  type SpiffeId,
} from './spiffe-id.ts';
export { PemError, certificatesFromPem, chainsTo, pemBlocks, toPem } from './pem.ts';
export type { SvidProvider } from './svid-provider.ts';
export {
  WorkloadApiSource,
  type WorkloadApiSourceOptions,
  type WorkloadApiSourceEvents,
} from './workload-api/source.ts';
export { WorkloadApiError, type WorkloadApiErrorReason } from './workload-api/errors.ts';
export { connectHttp2, SvidHttp2Client, type Http2ClientOptions } from './http2-client.ts';
export { connectTls, type TlsConnectOptions } from './tls-client.ts';
