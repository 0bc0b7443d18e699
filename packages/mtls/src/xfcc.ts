// A strict parser for Envoy's x-forwarded-client-cert header. Grammar (Envoy docs, "x-forwarded-client-cert"):
//   header  = element *( "," element )          ; one element per proxy hop, the newest last
//   element = pair *( ";" pair )
//   pair    = key "=" value                     ; keys case-insensitive: By, Hash, Cert, Chain, Subject, URI, DNS
//   value   = token / quoted                    ; quoted when it holds "," ";" or "="; \" escapes a quote
// Anything else (an unbalanced quote, an unknown or repeated key, an empty element, a stray character) makes
// the whole header malformed: it is refused, never guessed at.

export interface XfccElement {
  by?: string;
  hash?: string;
  cert?: string;
  chain?: string;
  subject?: string;
  /** The URI SAN of the client certificate; at most one per element. */
  uri?: string;
  dns: string[];
}

export class XfccError extends Error {
  constructor(message: string) {
    super(`malformed x-forwarded-client-cert header: ${message}`);
    this.name = 'XfccError';
  }
}

const KEYS = new Map([
  ['by', 'by'],
  ['hash', 'hash'],
  ['cert', 'cert'],
  ['chain', 'chain'],
  ['subject', 'subject'],
  ['uri', 'uri'],
  ['dns', 'dns'],
] as const);
const MAX_LENGTH = 64 * 1024;
const MAX_ELEMENTS = 64;
const isSpace = (c: string | undefined) => c === ' ' || c === '\t';

/** Every element of an XFCC header, oldest first. Throws an XfccError on anything malformed. */
export function parseXfcc(header: string): XfccElement[] {
  if (header.length > MAX_LENGTH) throw new XfccError(`longer than ${MAX_LENGTH} characters`);
  const elements: XfccElement[] = [];
  let element: XfccElement = { dns: [] };
  let i = 0;
  const at = () => `at character ${i + 1}`;
  for (;;) {
    while (isSpace(header[i])) i++;
    // key
    const keyStart = i;
    while (i < header.length && /[A-Za-z]/.test(header[i] as string)) i++;
    const rawKey = header.slice(keyStart, i);
    if (rawKey === '') throw new XfccError(`expected a key ${at()}`);
    if (header[i] !== '=') throw new XfccError(`expected "=" after ${rawKey} ${at()}`);
    i++;
    const key = KEYS.get(rawKey.toLowerCase() as never);
    if (!key) throw new XfccError(`unknown key ${JSON.stringify(rawKey)}`);
    // value
    let value = '';
    if (header[i] === '"') {
      i++;
      for (;;) {
        const c = header[i];
        if (c === undefined) throw new XfccError('unbalanced double quote');
        if (c === '\\') {
          const next = header[i + 1];
          if (next === undefined) throw new XfccError('unbalanced double quote');
          value += next;
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
    } else {
      const start = i;
      while (i < header.length && header[i] !== ';' && header[i] !== ',') {
        if (header[i] === '"' || header[i] === '=' || header[i] === '\\')
          throw new XfccError(`${JSON.stringify(header[i])} in an unquoted value ${at()}`);
        i++;
      }
      value = header.slice(start, i).replace(/[ \t]+$/, '');
    }
    if (key === 'dns') element.dns.push(value);
    else if (element[key] !== undefined) throw new XfccError(`${rawKey}= appears twice in one element`);
    else element[key] = value;
    while (isSpace(header[i])) i++;
    const sep = header[i];
    if (sep === ';') {
      i++;
      continue;
    }
    if (sep === ',' || sep === undefined) {
      elements.push(element);
      if (elements.length > MAX_ELEMENTS) throw new XfccError(`more than ${MAX_ELEMENTS} elements`);
      if (sep === undefined) return elements;
      element = { dns: [] };
      i++;
      continue;
    }
    throw new XfccError(`expected ";" or "," ${at()}`);
  }
}

/**
 * The client identity a directly connected proxy vouches for: the URI= of the last element (the one the
 * proxy added), which must be the only URI= of that element; when the element has By=, it must equal the
 * proxy's own SPIFFE ID. Returns the URI, or the reason it cannot be believed.
 */
export function xfccClientUri(
  header: string,
  proxyId: string,
): { ok: true; uri: string } | { ok: false; reason: string } {
  let elements: XfccElement[];
  try {
    elements = parseXfcc(header);
  } catch (err) {
    if (err instanceof XfccError) return { ok: false, reason: err.message };
    throw err;
  }
  const last = elements.at(-1) as XfccElement;
  if (last.by !== undefined && last.by !== proxyId) {
    return {
      ok: false,
      reason: `the last x-forwarded-client-cert element was added by ${last.by}, not by the proxy ${proxyId}`,
    };
  }
  if (last.uri === undefined)
    return { ok: false, reason: 'the proxy vouched for a client certificate without a URI SAN' };
  return { ok: true, uri: last.uri };
}
