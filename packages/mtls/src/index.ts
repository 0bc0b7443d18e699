// @svid-operator/mtls: mutual TLS with SPIFFE X.509-SVIDs, reloaded on rotation. Depends on node: builtins
// and undici only, never on a Kubernetes client.
export type { X509Bundle, X509Source, X509SourceEvents, X509Svid } from './source/x509-source.ts';
export {
  SvidError,
  SvidSource,
  validateSvid,
  type Svid,
  type SvidFiles,
  type SvidSourceEvents,
  type SvidSourceOptions,
} from './source/secret-volume-source.ts';
export { openPodCertificateSource, type PodCertificateFiles } from './source/pod-certificate-source.ts';
export { splitCredentialBundle } from './source/credential-bundle.ts';
export {
  authorizeAny,
  authorizeId,
  authorizeIf,
  authorizeMemberOf,
  authorizeOneOf,
  authorizeUnder,
  type Authorizer,
} from './authorize.ts';
export { spiffeIdOf } from './identity.ts';
export { parseSubjectAltName } from './san.ts';
export { svidLeafId, toPeerId, type PeerId } from './x509-svid.ts';
export { socketVerdict, verifyPeerCertificate, type PeerFailure, type PeerVerdict } from './peer.ts';
export type { MtlsEvent, Observer } from './observe.ts';
export {
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
  callerIdentity,
  expressSpiffeAuth,
  fastifySpiffeAuth,
  type IdentityOptions,
  type TrustedProxyOptions,
} from './middleware.ts';
export { parseXfcc, xfccClientUri, XfccError, type XfccElement } from './xfcc.ts';
export {
  SpiffeIdError,
  isSpiffeId,
  parseSpiffeId,
  pathProblem,
  trustDomainProblem,
  validateTrustDomain,
  type SpiffeId,
} from './spiffe-id.ts';
export { PemError, buildPath, certificatesFromPem, chainsTo, pemBlocks, toPem } from './pem.ts';
export {
  WorkloadApiSource,
  type WorkloadApiSourceOptions,
  type WorkloadApiSourceEvents,
} from './workload-api/source.ts';
export { WorkloadApiError, type WorkloadApiErrorReason } from './workload-api/errors.ts';
export { connectHttp2, SvidHttp2Client, type Http2ClientOptions } from './http2-client.ts';
export { connectTls, type TlsConnectOptions } from './tls-client.ts';
