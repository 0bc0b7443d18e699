// --bootstrap-dev-ca: the operator creates a development CA Secret when none exists, instead of the chart's
// former Helm genCA (which kept the CA key in Helm's release Secrets, made an RSA root without the SPIFFE
// profile, and rendered a new CA on every `helm template` / GitOps render). Create-only: an existing Secret
// is never read for its key, changed or replaced; when replicas race, the API server's 409 decides.
import type * as k8s from '@kubernetes/client-node';
import { paths, type KubeClient } from '../kube/client.ts';
import { isConflict, isNotFound } from '../kube/errors.ts';
import { createSelfSignedCa } from '../pki/index.ts';
import { GROUP } from '../reconcilers/workload-identity/types.ts';

export const DEV_CA_LABEL = `${GROUP}/dev-ca`;

export interface DevCaLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

export type DevCaOutcome = 'created' | 'exists';

/**
 * Makes sure the CA Secret exists, creating a self-signed root with the SPIFFE signing-certificate profile
 * (ECDSA P-256; basicConstraints CA:TRUE and keyUsage keyCertSign|cRLSign, both critical; URI SAN
 * spiffe://<trust domain>) when it does not. Other API errors are thrown: the caller reports them.
 */
export async function ensureDevCa(
  kc: KubeClient,
  opts: {
    namespace: string;
    name: string;
    trustDomain: string;
    validitySeconds: number;
    log: DevCaLogger;
    now?: Date;
  },
): Promise<DevCaOutcome> {
  const { namespace, name } = opts;
  try {
    // Only whether it exists matters; its contents are the CA loader's business.
    await kc.get(paths.secret(namespace, name));
    return 'exists';
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const ca = await createSelfSignedCa({
    trustDomain: opts.trustDomain,
    validitySeconds: opts.validitySeconds,
    commonName: `svid-operator development root for ${opts.trustDomain}`,
    now: opts.now,
  });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  try {
    await kc.create(paths.secrets(namespace), {
      metadata: {
        name,
        namespace,
        labels: { [DEV_CA_LABEL]: 'true' },
        annotations: {
          [`${GROUP}/description`]:
            'Development CA created by svid-operator --bootstrap-dev-ca. Replace it with your own CA for production.',
        },
      },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(ca.certPem), 'tls.key': b64(ca.keyPem), 'ca.crt': b64(ca.certPem) },
    } satisfies k8s.V1Secret);
  } catch (err) {
    // Another replica (or a person) created it first: theirs stands.
    if (isConflict(err)) return 'exists';
    throw err;
  }
  opts.log.warn('created a self-signed development CA; replace it with your own CA for production', {
    caSecret: `${namespace}/${name}`,
    trustDomain: opts.trustDomain,
  });
  return 'created';
}
