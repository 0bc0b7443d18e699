export {
  checkDnsNames,
  dnsNameProblem,
  matchesPattern,
  patternProblem,
  type DnsPolicy,
  type DnsViolation,
} from './dns.ts';
