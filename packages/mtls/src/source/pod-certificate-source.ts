// A `podCertificate` projected volume (Kubernetes 1.35+, KEP-4317) as an SVID source. The kubelet writes the
// key it made on the node and the chain the signer issued either as one file (credentialBundlePath: the
// PKCS#8 key, then the chain, leaf first) or as two (keyPath + certificateChainPath), and the trust bundle
// comes from a `clusterTrustBundle` source in the same projected volume or from the svid-trust-bundle
// ConfigMap. A projected volume is updated with the same atomic ..data swap as a Secret volume, so the
// same SvidSource reads and hot-reloads it; one file is read at once, so key and chain always match.
import { SvidSource, type SvidSourceOptions } from './secret-volume-source.ts';

export type PodCertificateFiles =
  | { credentialBundlePath: string; trustBundlePath: string }
  | { keyPath: string; certificateChainPath: string; trustBundlePath: string };

/**
 * Opens a pod-certificate volume at `dir` (the projected volume's mountPath). Throws an SvidError when it
 * holds no valid SVID yet; afterwards it behaves exactly as a Secret-volume SvidSource.
 */
export function openPodCertificateSource(
  dir: string,
  files: PodCertificateFiles,
  opts: Omit<SvidSourceOptions, 'files'> = {},
): Promise<SvidSource> {
  const layout =
    'credentialBundlePath' in files
      ? { cert: files.credentialBundlePath, key: files.credentialBundlePath, bundle: files.trustBundlePath }
      : { cert: files.certificateChainPath, key: files.keyPath, bundle: files.trustBundlePath };
  return SvidSource.open(dir, { ...opts, files: layout });
}
