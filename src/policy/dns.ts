// Which DNS SANs a WorkloadIdentity may carry. By default only names that belong to its own namespace:
// a single label (resolved through the pod's namespace search path), or a name under .<ns>.svc or
// .<ns>.svc.<cluster-domain>. Cluster admins widen this with allow-list patterns.

export interface DnsPolicy {
  namespace: string;
  clusterDomain: string;
  /** Admin patterns: an exact name, or "*.suffix" for any name with one or more labels before ".suffix". */
  allowedPatterns: readonly string[];
}

export interface DnsViolation {
  name: string;
  message: string;
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Why `name` is not a valid RFC 1123 DNS name (optionally a leftmost "*" wildcard), or undefined. */
export function dnsNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the DNS name is empty';
  if (name.length > 253) return `the DNS name is ${name.length} characters long; at most 253 are allowed`;
  if (name !== name.toLowerCase()) return `the DNS name "${name}" has uppercase letters; use lowercase`;
  if (name.endsWith('.')) return `the DNS name "${name}" must not end with "."`;
  const labels = name.split('.');
  if (name === '*')
    return 'the DNS name "*" is a bare wildcard: a wildcard needs a domain after it, e.g. *.example.com';
  for (const [i, label] of labels.entries()) {
    if (label === '*' && i === 0 && labels.length > 1) continue;
    if (label.includes('*'))
      return `the DNS name "${name}" has a wildcard that is not the whole leftmost label`;
    if (label === '') return `the DNS name "${name}" has an empty label`;
    if (label.length > 63)
      return `the label "${label.slice(0, 20)}…" in "${name}" is longer than 63 characters`;
    if (!LABEL.test(label)) {
      return `the label "${label}" in "${name}" may only hold a-z, 0-9 and "-", and must not start or end with "-"`;
    }
  }
  return undefined;
}

/** Whether `name` matches an admin pattern. A requested "*" label is compared like any other label. */
export function matchesPattern(name: string, pattern: string): boolean {
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    return name.endsWith(suffix) && name.length > suffix.length;
  }
  return name === pattern;
}

function defaultPolicyAllows(name: string, policy: DnsPolicy): boolean {
  if (name.includes('*')) return false;
  if (!name.includes('.')) return true;
  const svc = `.${policy.namespace}.svc`;
  return name.endsWith(svc) || name.endsWith(`${svc}.${policy.clusterDomain}`);
}

/** Every requested name that is malformed or not allowed, with a message that says why and what to do. */
export function checkDnsNames(names: readonly string[], policy: DnsPolicy): DnsViolation[] {
  const violations: DnsViolation[] = [];
  for (const name of names) {
    const problem = dnsNameProblem(name);
    if (problem) {
      violations.push({ name, message: problem });
      continue;
    }
    if (defaultPolicyAllows(name, policy) || policy.allowedPatterns.some((p) => matchesPattern(name, p)))
      continue;
    const other = /\.([a-z0-9-]+)\.svc(\.|$)/.exec(name)?.[1];
    const message = name.includes('*')
      ? `the wildcard DNS name "${name}" is not allowed: ask a cluster admin to allow it with --allowed-dns-pattern`
      : other && other !== policy.namespace
        ? `the DNS name "${name}" belongs to namespace "${other}", not "${policy.namespace}": a WorkloadIdentity may only name services in its own namespace`
        : `the DNS name "${name}" is outside this namespace: use a single label, or a name ending in .${policy.namespace}.svc or .${policy.namespace}.svc.${policy.clusterDomain}, or ask a cluster admin to allow it with --allowed-dns-pattern`;
    violations.push({ name, message });
  }
  return violations;
}

/** Validates an admin pattern given to --allowed-dns-pattern; returns the problem or undefined. */
export function patternProblem(pattern: string): string | undefined {
  const problem = dnsNameProblem(pattern);
  if (problem) return problem;
  if (pattern.startsWith('*.') && pattern.split('.').length < 3) {
    return `the pattern "${pattern}" would allow names under a top-level domain; use at least two labels after "*."`;
  }
  return undefined;
}
