// Authorization rules over parsed SPIFFE IDs. A server must be given one: allowing every SVID of the trust
// bundle is the explicit authorizeAny(), as in go-spiffe.
import { parseSpiffeId, validateTrustDomain } from './spiffe-id.ts';
import type { PeerId } from './x509-svid.ts';

/** A rule: true allows the peer. `description` names the rule in denial events and logs. */
export interface Authorizer {
  (peer: PeerId): boolean;
  readonly description: string;
}

function rule(description: string, test: (peer: PeerId) => boolean): Authorizer {
  return Object.assign((peer: PeerId) => test(peer), { description });
}

/** Every SVID that verifies against the trust bundle of its trust domain. */
export function authorizeAny(): Authorizer {
  return rule('any SVID', () => true);
}

/** Exactly these SPIFFE IDs (each checked when the rule is made: a typo throws, it does not deny forever). */
export function authorizeId(...ids: string[]): Authorizer {
  if (ids.length === 0) throw new Error('authorizeId needs at least one SPIFFE ID');
  for (const id of ids) parseSpiffeId(id);
  const set = new Set(ids);
  return rule(`one of ${ids.join(', ')}`, (peer) => set.has(peer.id));
}

/** Every SVID of this trust domain (compared as a parsed trust domain, never as a prefix). */
export function authorizeMemberOf(trustDomain: string): Authorizer {
  validateTrustDomain(trustDomain);
  return rule(`member of ${trustDomain}`, (peer) => peer.trustDomain === trustDomain);
}

/**
 * SVIDs at or below a SPIFFE ID, compared segment by segment: `spiffe://td/ns/prod` allows
 * `spiffe://td/ns/prod/sa/api` but not `spiffe://td/ns/prod-evil/sa/api`.
 */
export function authorizeUnder(prefixId: string): Authorizer {
  const prefix = parseSpiffeId(prefixId);
  const segments = prefix.path === '' ? [] : prefix.path.slice(1).split('/');
  return rule(
    `under ${prefixId}`,
    (peer) => peer.trustDomain === prefix.trustDomain && segments.every((s, i) => peer.segments[i] === s),
  );
}

/** Any of several rules. */
export function authorizeOneOf(...rules: Authorizer[]): Authorizer {
  return rule(rules.map((r) => r.description).join(' or '), (peer) => rules.some((r) => r(peer)));
}

/** A rule of your own over the parsed ID; `description` names it in denial events. */
export function authorizeIf(description: string, test: (peer: PeerId) => boolean): Authorizer {
  return rule(description, test);
}

/** The rule from options: an Authorizer, or a list of SPIFFE IDs (authorizeId). */
export function toAuthorizer(value: Authorizer | readonly string[] | undefined, what: string): Authorizer {
  if (typeof value === 'function') return value;
  if (Array.isArray(value)) return authorizeId(...(value as string[]));
  throw new Error(
    `${what} needs an authorization rule: authorize: authorizeId(...ids), authorizeMemberOf(trustDomain), authorizeUnder(id) or, to allow every SVID of the trust bundle, authorizeAny()`,
  );
}
