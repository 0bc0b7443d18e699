// The PKI: CA loading, X.509-SVID issuance (the signer), and verification of an existing SVID. Pure
// code over node:crypto with no Kubernetes I/O.
export { PkiError } from './errors.ts';
export {
  DEFAULT_KEY,
  describeKey,
  formatKeySpec,
  generateKeyPair,
  keySpecFrom,
  parseKeySpec,
  sameKeySpec,
  type KeySpec,
} from './keys.ts';
export { chainsTo, createSelfSignedCa, describeCa, loadCa, type CaMaterial, type LoadedCa } from './ca.ts';
export { CLOCK_SKEW_SECONDS, issueSvid, type IssuedSvid, type SvidRequest } from './issue.ts';
export {
  verifySvid,
  type ExpectedSvid,
  type ReissueReason,
  type SecretSvid,
  type SvidDecision,
} from './verify.ts';
export {
  acceptPublicKey,
  signSvidForPublicKey,
  spkiFromPkcs10,
  type PublicKeySvidRequest,
  type SignedSvid,
} from './public-key.ts';
export { inspectSvid, issuedSvidFacts, type SvidFacts } from './svid-facts.ts';
export { subjectCheck, svidConformance, type Check } from './svid-rules.ts';
export { parseCertificates, parsePrivateKey, profile, pemBlocks } from './x509.ts';
