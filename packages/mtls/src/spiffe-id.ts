// SPIFFE ID rules from the SPIFFE-ID specification (§2): spiffe://<trust domain><path>. The one parser of the
// project: the library checks peers with it and the operator checks what it issues with it.

/** A SPIFFE ID or trust domain that breaks the specification; the message names the rule. */
export class SpiffeIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpiffeIdError';
  }
}

export interface SpiffeId {
  trustDomain: string;
  path: string;
}

const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const PATH_SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;
// The specification limits a SPIFFE ID to 2048 bytes and a trust domain to 255.
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN = 255;

/** Returns the reason a trust domain name is invalid, or undefined when it is valid. */
export function trustDomainProblem(td: string): string | undefined {
  if (td.length === 0) return 'the trust domain is empty';
  if (td.length > MAX_TRUST_DOMAIN)
    return `the trust domain is ${td.length} characters long; at most ${MAX_TRUST_DOMAIN} are allowed`;
  if (!TRUST_DOMAIN_CHARS.test(td)) {
    const bad = [...td].find((c) => !/[a-z0-9._-]/.test(c)) ?? '';
    return `the trust domain "${td}" contains ${JSON.stringify(bad)}: only lowercase letters, digits, ".", "-" and "_" are allowed`;
  }
  return undefined;
}

export function validateTrustDomain(td: string): string {
  const problem = trustDomainProblem(td);
  if (problem) throw new SpiffeIdError(problem);
  return td;
}

/** Returns the reason a path is invalid ("" is the trust domain's own ID), or undefined when it is valid. */
export function pathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (!path.startsWith('/')) return `the path "${path}" must start with "/"`;
  if (path.endsWith('/')) return `the path "${path}" must not end with "/"`;
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') return `the path "${path}" has an empty segment ("//")`;
    if (segment === '.' || segment === '..') return `the path "${path}" has a "${segment}" segment`;
    if (!PATH_SEGMENT_CHARS.test(segment)) {
      const bad = [...segment].find((c) => !/[a-zA-Z0-9._-]/.test(c)) ?? '';
      return `the path segment "${segment}" contains ${JSON.stringify(bad)}: only letters, digits, ".", "-" and "_" are allowed`;
    }
  }
  return undefined;
}

export function parseSpiffeId(id: string): SpiffeId {
  if (Buffer.byteLength(id) > MAX_ID_BYTES) {
    throw new SpiffeIdError(
      `the SPIFFE ID is ${Buffer.byteLength(id)} bytes long; at most ${MAX_ID_BYTES} are allowed`,
    );
  }
  const scheme = 'spiffe://';
  if (!id.startsWith(scheme)) {
    throw new SpiffeIdError(`"${id}" is not a SPIFFE ID: it must start with "spiffe://" (lowercase)`);
  }
  const rest = id.slice(scheme.length);
  if (/[?#]/.test(rest)) throw new SpiffeIdError(`the SPIFFE ID "${id}" must not have a query or fragment`);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (trustDomain.includes('@'))
    throw new SpiffeIdError(`the SPIFFE ID "${id}" must not contain user info ("@")`);
  if (trustDomain.includes(':')) throw new SpiffeIdError(`the SPIFFE ID "${id}" must not contain a port`);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) throw new SpiffeIdError(`${tdProblem} (in "${id}")`);
  const problem = pathProblem(path);
  if (problem) throw new SpiffeIdError(`${problem} (in "${id}")`);
  return { trustDomain, path };
}

export function isSpiffeId(id: string): boolean {
  try {
    parseSpiffeId(id);
    return true;
  } catch {
    return false;
  }
}
