export {
  SpiffeIdError,
  buildSpiffeId,
  isSpiffeId,
  parseSpiffeId,
  pathProblem,
  trustDomainProblem,
  validateTrustDomain,
  type SpiffeId,
} from './id.ts';
