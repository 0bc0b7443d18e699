// The single-file layout of a pod certificate (credentialBundlePath): the PKCS#8 key, then the chain.
const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?\r?\n-----END \1-----\r?\n?/g;
/** Bounded like the API server bounds a chain (100 KiB) plus a 4096-bit RSA key. */
const MAX_BUNDLE_BYTES = 128 * 1024;

/**
 * Splits a credential bundle into its key and its chain. It must be exactly one PKCS#8 "PRIVATE KEY" block
 * followed by one or more "CERTIFICATE" blocks, with nothing but whitespace around them; otherwise the
 * problem (never quoting the key).
 */
export function splitCredentialBundle(
  text: string,
): { keyPem: string; certChainPem: string } | { problem: string } {
  if (text.length > MAX_BUNDLE_BYTES) {
    return { problem: `the credential bundle is ${text.length} bytes, more than ${MAX_BUNDLE_BYTES}` };
  }
  const blocks = [...text.matchAll(BLOCK)];
  const rest = text.replace(BLOCK, '').trim();
  if (rest !== '') return { problem: 'the credential bundle has text outside its PEM blocks' };
  const [first, ...certs] = blocks;
  if (!first || first[1] !== 'PRIVATE KEY') {
    return { problem: 'the credential bundle must start with the PKCS#8 private key ("PRIVATE KEY" block)' };
  }
  if (certs.length === 0) return { problem: 'the credential bundle has no certificate after its key' };
  const odd = certs.find((b) => b[1] !== 'CERTIFICATE');
  if (odd)
    return {
      problem: `the credential bundle has a "${odd[1]}" block after its key; only certificates may follow`,
    };
  return { keyPem: first[0], certChainPem: certs.map((b) => b[0]).join('') };
}
