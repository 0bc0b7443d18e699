export {
  SpiffeIdError,
  isSpiffeId,
  parseSpiffeId,
  pathProblem,
  trustDomainProblem,
  validateTrustDomain,
  type SpiffeId,
} from '@svid-operator/mtls';
export { buildSpiffeId } from './id.ts';
