// Node's subjectAltName strings ("URI:spiffe://a, DNS:b").

/**
 * Splits a subjectAltName string. Since CVE-2021-44532 Node quotes entries that contain separators, as JSON
 * strings, so they are parsed, not split blindly.
 */
export function parseSubjectAltName(san: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  const text = san ?? '';
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon).trim();
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      end = text.indexOf(',', j);
    } else {
      end = text.indexOf(',', colon);
      value = text.slice(colon + 1, end < 0 ? undefined : end);
    }
    out.push({ type, value });
    i = end < 0 ? text.length : end + 1;
  }
  return out;
}
