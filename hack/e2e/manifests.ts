// The end-to-end scenario's workloads, shared by the local node (npm run e2e) and kind
// (hack/e2e-kind.sh): the example server and client as Deployments with WorkloadIdentities and their
// SVID Secrets as volumes, a stranger Job whose SPIFFE ID the server does not allow, and a Job that
// scrapes the operator's /metrics through its Service. Every image is local (imagePullPolicy: Never).
import { stringify as toYaml } from 'yaml';

export interface ScenarioNames {
  operatorNamespace: string;
  appNamespace: string;
  trustDomain: string;
  exampleImage: string;
  /** SVID lifetime and renew-before: short, so SVIDs rotate several times during the run. */
  duration: string;
  renewBefore: string;
}

export const defaultNames: ScenarioNames = {
  operatorNamespace: 'svid-system',
  appNamespace: 'svid-e2e',
  trustDomain: 'e2e.svid.dev',
  exampleImage: 'svid-example:e2e',
  duration: '2m',
  renewBefore: '1m',
};

export const spiffeId = (n: ScenarioNames, sa: string) =>
  `spiffe://${n.trustDomain}/ns/${n.appNamespace}/sa/${sa}`;

const restricted = {
  pod: {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    seccompProfile: { type: 'RuntimeDefault' },
  },
  container: {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  },
};

const svidVolume = (sa: string) => ({
  volumeMounts: [{ name: 'svid', mountPath: '/var/run/svid', readOnly: true }],
  volume: { name: 'svid', secret: { secretName: `${sa}-svid` } },
});

function exampleContainer(n: ScenarioNames, name: string, args: string[], sa: string, extra: object = {}) {
  return {
    name,
    image: n.exampleImage,
    imagePullPolicy: 'Never',
    args,
    volumeMounts: svidVolume(sa).volumeMounts,
    securityContext: restricted.container,
    ...extra,
  };
}

export function identities(n: ScenarioNames, names: string[]): string {
  return names
    .flatMap((sa) => [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: n.appNamespace } },
      {
        apiVersion: 'identity.svid.dev/v1alpha1',
        kind: 'WorkloadIdentity',
        metadata: { name: sa, namespace: n.appNamespace },
        spec: {
          serviceAccountName: sa,
          secretName: `${sa}-svid`,
          duration: n.duration,
          renewBefore: n.renewBefore,
          dnsNames: [sa, `${sa}.${n.appNamespace}.svc`],
        },
      },
    ])
    .map((d) => toYaml(d))
    .join('---\n');
}

function deployment(n: ScenarioNames, name: string, container: object, extra: object = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: n.appNamespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          securityContext: restricted.pod,
          containers: [container],
          volumes: [svidVolume(name).volume],
          ...extra,
        },
      },
    },
  };
}

/** The server (allows only the client's SPIFFE ID) and its Service. */
export function server(n: ScenarioNames): string {
  const c = exampleContainer(
    n,
    'server',
    ['examples/server.js', '--svid-dir', '/var/run/svid', '--port', '8443', '--allow', spiffeId(n, 'client')],
    'server',
    {
      ports: [{ containerPort: 8443 }],
      // Ready once it accepts connections: the client starts only after this.
      readinessProbe: { tcpSocket: { port: 8443 }, periodSeconds: 1 },
    },
  );
  const svc = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'server', namespace: n.appNamespace },
    spec: { selector: { app: 'server' }, ports: [{ port: 8443, targetPort: 8443 }] },
  };
  return [deployment(n, 'server', c), svc].map((d) => toYaml(d)).join('---\n');
}

const clientArgs = (n: ScenarioNames, count: number, intervalMs: number) => [
  'examples/client.js',
  '--svid-dir',
  '/var/run/svid',
  '--url',
  `https://server.${n.appNamespace}.svc:8443/`,
  '--server-id',
  spiffeId(n, 'server'),
  '--count',
  String(count),
  '--interval-ms',
  String(intervalMs),
  // Started right after the server: wait until kube-proxy routes its Service before the first request.
  '--wait-reachable-ms',
  '60000',
];

/** The client, calling the server continuously (it runs longer than any scenario). */
export function client(n: ScenarioNames): string {
  const c = exampleContainer(n, 'client', clientArgs(n, 1_000_000, 500), 'client');
  return toYaml(deployment(n, 'client', c));
}

function job(n: ScenarioNames, name: string, sa: string | undefined, container: object): string {
  return toYaml({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: n.appNamespace },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          ...(sa ? { serviceAccountName: sa } : {}),
          securityContext: restricted.pod,
          containers: [container],
          ...(sa ? { volumes: [svidVolume(sa).volume] } : {}),
        },
      },
    },
  });
}

/** A client with a valid SVID whose SPIFFE ID the server does not allow: every request gets 403. */
export function stranger(n: ScenarioNames): string {
  return job(n, 'stranger', 'stranger', exampleContainer(n, 'stranger', clientArgs(n, 3, 200), 'stranger'));
}

/** Fetches the operator's /metrics through its Service by its cluster DNS name and prints it. */
export function metricsScraper(n: ScenarioNames, service: string, port: number): string {
  const url = `http://${service}.${n.operatorNamespace}.svc:${port}/metrics`;
  const script = `const r = await fetch(${JSON.stringify(url)}); console.log('status ' + r.status); console.log(await r.text()); process.exit(r.ok ? 0 : 1);`;
  return job(n, 'metrics', undefined, {
    name: 'metrics',
    image: n.exampleImage,
    imagePullPolicy: 'Never',
    args: ['--input-type=module', '-e', script],
    securityContext: restricted.container,
  });
}
