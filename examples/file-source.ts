// How the example server and client read their SVID from files: `--svid-dir DIR` (a mounted WorkloadIdentity
// Secret: tls.crt, tls.key, ca.crt) or `--pod-certificate-dir DIR` (a projected volume with a `podCertificate`
// source written to credentialbundle.pem and a `clusterTrustBundle` source written to ca.crt, as in the
// README's pod-certificate section). Both hot-reload on the kubelet's atomic update.
import { openPodCertificateSource, SvidSource } from '@svid-operator/mtls';

export const fileSourceOptions = {
  'svid-dir': { type: 'string' },
  'pod-certificate-dir': { type: 'string' },
} as const;

export const fileSourceUsage = '(--svid-dir DIR | --pod-certificate-dir DIR)';

/** The source, or undefined when not exactly one of the two options is given. */
export function openFileSource(values: {
  'svid-dir'?: string;
  'pod-certificate-dir'?: string;
}): Promise<SvidSource> | undefined {
  const secretDir = values['svid-dir'];
  const podCertDir = values['pod-certificate-dir'];
  if (secretDir && !podCertDir) return SvidSource.open(secretDir);
  if (podCertDir && !secretDir)
    return openPodCertificateSource(podCertDir, {
      credentialBundlePath: 'credentialbundle.pem',
      trustBundlePath: 'ca.crt',
    });
  return undefined;
}
