// Publishes the trust bundle (the CA's roots plus extra roots, and during a CA rotation the previous
// roots too, exactly as the WorkloadIdentity Secrets' ca.crt) where pods can read it without a Secret:
//  - one ClusterTrustBundle for the signer name, labelled for `clusterTrustBundle` projection;
//  - a ConfigMap in every namespace that opted in, with `ca.crt` (PEM) and `bundle.spiffe` (SPIFFE JWKS).
// Writes only when the content changed; a ConfigMap the operator does not own is never overwritten.
import type * as k8s from '@kubernetes/client-node';
import { paths, type KubeClient } from '../kube/client.ts';
import { isNotFound } from '../kube/errors.ts';
import { errorText } from '../controller-runtime/informer.ts';
import { PCR_GROUP, PCR_VERSION, CTB_PLURAL, SIGNER_NAME } from '../reconcilers/pod-certificate/types.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../reconcilers/workload-identity/types.ts';
import { nextSpiffeBundle, parseSpiffeBundle, type SpiffeBundle } from './spiffe-bundle.ts';

/** ClusterTrustBundle names for a signer must start with the signer name, "/" replaced by ":". */
export const CTB_NAME = `${SIGNER_NAME.replace(/\//g, ':')}:roots`;
export const CTB_LABEL = 'identity.svid.dev/trust-bundle';
export const CTB_LABEL_VALUE = 'roots';
export const CONFIGMAP_NAME = 'svid-trust-bundle';
const SEQUENCE_ANNOTATION = 'identity.svid.dev/spiffe-sequence';

export interface TrustPublisherOptions {
  kc: KubeClient;
  /** The trust bundle PEM to publish now, or undefined while the CA is unusable (the last one stays). */
  roots: () => string | undefined;
  namespaces: () => string[];
  /** Publish ClusterTrustBundles (needs the ClusterTrustBundle API, certificates.k8s.io/v1beta1). */
  clusterTrustBundle: boolean;
  refreshHintSeconds: number;
  resyncMs: number;
  onWrite: (kind: 'ClusterTrustBundle' | 'ConfigMap') => void;
  log: {
    info(message: string, meta?: Record<string, unknown>): void;
    warn(message: string, meta?: Record<string, unknown>): void;
  };
}

interface ClusterTrustBundle {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: { signerName: string; trustBundle: string };
}

export class TrustPublisher {
  private readonly o: TrustPublisherOptions;
  private readonly kc: KubeClient;
  private running = false;
  private again = false;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(o: TrustPublisherOptions) {
    this.o = o;
    this.kc = o.kc;
  }

  /** Publishes now (or right after a run in progress); then again every resync, to repair drift. */
  sync(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.publish()
      .catch((err: unknown) =>
        this.o.log.warn('publishing the trust bundle failed', { error: errorText(err) }),
      )
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.sync();
          return;
        }
        clearTimeout(this.timer);
        if (!this.stopped) {
          this.timer = setTimeout(() => this.sync(), this.o.resyncMs);
          this.timer.unref();
        }
      });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async publish(): Promise<void> {
    const roots = this.o.roots();
    if (!roots) return;
    const failures: string[] = [];
    if (this.o.clusterTrustBundle) {
      await this.publishClusterTrustBundle(roots).catch((err: unknown) =>
        failures.push(`ClusterTrustBundle ${CTB_NAME}: ${errorText(err)}`),
      );
    }
    for (const ns of this.o.namespaces()) {
      await this.publishConfigMap(ns, roots).catch((err: unknown) =>
        failures.push(`ConfigMap ${ns}/${CONFIGMAP_NAME}: ${errorText(err)}`),
      );
    }
    if (failures.length > 0) throw new Error(failures.join('; '));
  }

  private async publishClusterTrustBundle(roots: string): Promise<void> {
    const collection = paths.custom(PCR_GROUP, PCR_VERSION, '', CTB_PLURAL);
    const object = paths.customObject(PCR_GROUP, PCR_VERSION, '', CTB_PLURAL, CTB_NAME);
    let existing: ClusterTrustBundle | undefined;
    try {
      existing = await this.kc.get<ClusterTrustBundle>(object);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const body: ClusterTrustBundle = {
      apiVersion: `${PCR_GROUP}/${PCR_VERSION}`,
      kind: 'ClusterTrustBundle',
      metadata: {
        name: CTB_NAME,
        labels: { [CTB_LABEL]: CTB_LABEL_VALUE, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      },
      spec: { signerName: SIGNER_NAME, trustBundle: roots },
    };
    if (!existing) {
      await this.kc.create(collection, body);
    } else {
      const labelsOk =
        existing.metadata.labels?.[CTB_LABEL] === CTB_LABEL_VALUE &&
        existing.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
      if (existing.spec.trustBundle === roots && labelsOk) return;
      body.metadata.resourceVersion = existing.metadata.resourceVersion;
      body.metadata.labels = { ...existing.metadata.labels, ...body.metadata.labels };
      await this.kc.replace(object, body);
    }
    this.o.onWrite('ClusterTrustBundle');
    this.o.log.info('ClusterTrustBundle published', { name: CTB_NAME, roots: countCerts(roots) });
  }

  private async publishConfigMap(namespace: string, roots: string): Promise<void> {
    let existing: k8s.V1ConfigMap | undefined;
    try {
      existing = await this.kc.get<k8s.V1ConfigMap>(paths.configMap(namespace, CONFIGMAP_NAME));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (existing && existing.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) {
      this.o.log.warn('not publishing the trust bundle: a ConfigMap of that name exists and is not ours', {
        configMap: `${namespace}/${CONFIGMAP_NAME}`,
        fix: `delete or rename the ConfigMap ${namespace}/${CONFIGMAP_NAME}`,
      });
      return;
    }
    const before = existing?.data?.['bundle.spiffe'];
    const parsed = before ? parseSpiffeBundle(before) : undefined;
    // The sequence survives a hand-edited or corrupted bundle.spiffe through the annotation.
    const annotated = Number(existing?.metadata?.annotations?.[SEQUENCE_ANNOTATION]);
    const previous: SpiffeBundle | undefined =
      parsed && 'bundle' in parsed
        ? parsed.bundle
        : Number.isSafeInteger(annotated) && annotated > 0
          ? { keys: [], spiffe_sequence: annotated, spiffe_refresh_hint: 0 }
          : undefined;
    const bundle = nextSpiffeBundle(roots, previous, this.o.refreshHintSeconds);
    const data = { 'ca.crt': roots, 'bundle.spiffe': JSON.stringify(bundle, null, 2) };
    if (
      existing?.data?.['ca.crt'] === data['ca.crt'] &&
      previous?.spiffe_sequence === bundle.spiffe_sequence
    ) {
      return;
    }
    const body: k8s.V1ConfigMap = {
      metadata: {
        name: CONFIGMAP_NAME,
        namespace,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
        annotations: { [SEQUENCE_ANNOTATION]: String(bundle.spiffe_sequence) },
        resourceVersion: existing?.metadata?.resourceVersion,
      },
      data,
    };
    if (existing) await this.kc.replace(paths.configMap(namespace, CONFIGMAP_NAME), body);
    else await this.kc.create(paths.configMaps(namespace), body);
    this.o.onWrite('ConfigMap');
    this.o.log.info('trust bundle ConfigMap published', {
      configMap: `${namespace}/${CONFIGMAP_NAME}`,
      roots: bundle.keys.length,
      spiffeSequence: bundle.spiffe_sequence,
    });
  }
}

function countCerts(pem: string): number {
  return pem.split('-----BEGIN CERTIFICATE-----').length - 1;
}
