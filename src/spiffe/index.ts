export {
  SpiffeIdError,
  isSpiffeId,
  parseSpiffeId,
  pathProblem,
  trustDomainProblem,
  validateTrustDomain,
  type SpiffeId,
} from '@svid-operator/mtls/spiffe-id';
export { buildSpiffeId } from './id.ts';
