import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { createSelfSignedCa, issueSvid, loadCa } from '../../src/pki/index.ts';
import { opensslCa } from '../support/pki-fixtures.ts';
import {
  createIdentity,
  createNamespace,
  getIdentity,
  putCaSecret,
  ready,
  until,
} from '../harness/identities.ts';
import {
  caWithExtensions,
  GOOD_KEY_USAGE_CA,
  TRUNCATED_BASIC_CONSTRAINTS,
} from '../support/bad-extension-ca.ts';
import { OperatorProcess } from '../harness/operator-process.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const TD = 'bad.example.org';
const base = { serviceAccountName: 'svc', secretName: 'svc-svid' };

// Refused by the API server (schema or CEL), with the message a user sees from kubectl.
const rejected: [string, Record<string, unknown>, RegExp][] = [
  ['empty serviceAccountName', { ...base, serviceAccountName: '' }, /serviceAccountName/],
  [
    'uppercase serviceAccountName',
    { ...base, serviceAccountName: 'Payments' },
    /serviceAccountName must be a lowercase RFC 1123 name/,
  ],
  [
    'Cyrillic letter in serviceAccountName',
    { ...base, serviceAccountName: 'p\u0430yments' },
    /serviceAccountName must be a lowercase RFC 1123 name/,
  ],
  [
    'serviceAccountName of 254 characters',
    { ...base, serviceAccountName: 'a'.repeat(254) },
    /serviceAccountName.*(253|too long|longer)/,
  ],
  [
    'path in serviceAccountName',
    { ...base, serviceAccountName: '../../ns/kube-system/sa/admin' },
    /serviceAccountName must be a lowercase RFC 1123 name/,
  ],
  ['secretName with a slash', { ...base, secretName: 'a/b' }, /secretName must be a lowercase RFC 1123 name/],
  ['missing secretName', { serviceAccountName: 'svc' }, /secretName: Required value/],
  ['duration in days', { ...base, duration: '1d' }, /duration must be a positive Go duration/],
  ['negative duration', { ...base, duration: '-1h' }, /duration must be a positive Go duration/],
  ['zero duration', { ...base, duration: '0s' }, /duration must be a positive Go duration/],
  ['oversize duration string', { ...base, duration: '1'.repeat(40) + 's' }, /duration.*(32|too long|longer)/],
  [
    'renewBefore equal to duration',
    { ...base, duration: '1h', renewBefore: '60m' },
    /renewBefore must be at most half of duration/,
  ],
  [
    'renewBefore close to duration (a renewal loop with jitter)',
    { ...base, duration: '10m', renewBefore: '9m59s' },
    /renewBefore must be at most half of duration/,
  ],
  [
    'renewBefore just over half the duration',
    { ...base, duration: '1h', renewBefore: '30m1s' },
    /renewBefore must be at most half of duration/,
  ],
  ['uppercase DNS name', { ...base, dnsNames: ['Svc'] }, /each DNS name must be lowercase RFC 1123/],
  [
    'Unicode DNS name',
    { ...base, dnsNames: ['sv\u0441.bad.svc'] },
    /each DNS name must be lowercase RFC 1123/,
  ],
  [
    'DNS label of 64 characters',
    { ...base, dnsNames: [`${'a'.repeat(64)}.svc`] },
    /each DNS name must be lowercase RFC 1123/,
  ],
  [
    'DNS name of 254 characters',
    { ...base, dnsNames: [`${'a.'.repeat(126)}ab`] },
    /dnsNames\[0\].*(253|too long|longer)/,
  ],
  [
    '101 DNS names',
    { ...base, dnsNames: Array.from({ length: 101 }, (_, i) => `n${i}`) },
    /dnsNames.*(100|too many|must have at most)/,
  ],
  ['duplicate DNS names', { ...base, dnsNames: ['a', 'a'] }, /dnsNames\[1\]: Duplicate value/],
  [
    'unknown key algorithm',
    { ...base, privateKey: { algorithm: 'DSA' } },
    /Unsupported value: .*DSA.*supported values: .*ECDSA.*Ed25519.*RSA/,
  ],
  [
    'ECDSA-521',
    { ...base, privateKey: { algorithm: 'ECDSA', size: 521 } },
    /ECDSA keys have size 256 or 384/,
  ],
  [
    'RSA-1024',
    { ...base, privateKey: { algorithm: 'RSA', size: 1024 } },
    /RSA keys have size 2048, 3072 or 4096/,
  ],
  [
    'Ed25519 with a size',
    { ...base, privateKey: { algorithm: 'Ed25519', size: 256 } },
    /Ed25519 keys have no size/,
  ],
  [
    '65 template labels',
    {
      ...base,
      secretTemplate: { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v'])) },
    },
    /secretTemplate.labels.*(64|too many|must have at most)/,
  ],
];

// Accepted by the schema, refused by the operator's policy, reported on status.
const refused: [string, Record<string, unknown>, string, RegExp][] = [
  [
    'duration above --max-duration',
    { ...base, duration: '48h' },
    'InvalidSpec',
    /outside the operator's bounds \[10s, 24h\]/,
  ],
  [
    'duration below --min-duration',
    { ...base, duration: '5s' },
    'InvalidSpec',
    /outside the operator's bounds/,
  ],
  [
    'DNS name of another namespace',
    { ...base, dnsNames: ['svc.kube-system.svc'] },
    'PolicyViolation',
    /belongs to namespace "kube-system"/,
  ],
  [
    'DNS name outside the cluster',
    { ...base, dnsNames: ['login.example.com'] },
    'PolicyViolation',
    /outside this namespace.*--allowed-dns-pattern/,
  ],
  [
    'wildcard DNS name',
    { ...base, dnsNames: ['*.NS.svc'] },
    'PolicyViolation',
    /wildcard DNS name .* is not allowed/,
  ],
];

describe('bad input, table-driven', function () {
  this.timeout(5 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let op: OperatorProcess;
  const suffix = randomBytes(3).toString('hex');
  const ns = `bad-${suffix}`;
  const sys = `bad-sys-${suffix}`;
  const keyPems: string[] = [];

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    await createNamespace(kc, ns);
    await createNamespace(kc, sys);
    const ca = await createSelfSignedCa({ trustDomain: TD });
    keyPems.push(ca.keyPem);
    await putCaSecret(kc, sys, 'ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    op = new OperatorProcess(cp.kubeconfigPath, [
      `--trust-domain=${TD}`,
      `--ca-secret=${sys}/ca`,
      `--watch-namespace=${ns}`,
      '--min-duration=10s',
    ]);
    await op.start();
  });

  after(async () => {
    // No key material in any log line, status or event.
    const statuses = await kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({
      group: 'identity.svid.dev',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'workloadidentities',
    });
    const events = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace: ns });
    await op?.stop();
    const everything =
      JSON.stringify(op.logs) +
      op.stderr +
      JSON.stringify(statuses) +
      JSON.stringify(events.items.map((e) => e.message));
    expect(everything).not.to.contain('PRIVATE KEY');
    for (const pem of keyPems) {
      for (const line of pem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) {
        expect(everything).not.to.contain(line.slice(0, 24));
      }
    }
  });

  for (const [what, spec, message] of rejected) {
    it(`API server refuses ${what}`, async () => {
      const body = await createIdentity(kc, ns, `r-${randomBytes(3).toString('hex')}`, spec).then(
        () => 'accepted',
        (err: k8s.ApiException<string>) => String(err.body),
      );
      expect(body).to.match(message);
    });
  }

  for (const [what, spec, reason, message] of refused) {
    it(`operator refuses ${what} with ${reason}`, async () => {
      const name = `p-${randomBytes(3).toString('hex')}`;
      const dns = (spec.dnsNames as string[] | undefined)?.map((d) => d.replace('NS', ns));
      await createIdentity(kc, ns, name, { ...spec, ...(dns ? { dnsNames: dns } : {}) });
      const condition = await until(`${name} ${reason}`, 30_000, async () => {
        const c = ready(await getIdentity(kc, ns, name));
        return c?.reason === reason ? c : undefined;
      });
      expect(condition.status).to.equal('False');
      expect(condition.message).to.match(message);
    });
  }

  describe('broken CA Secrets', () => {
    const cases: [string, () => Promise<Record<string, string>>, RegExp][] = [
      [
        'garbage',
        async () => ({ 'tls.crt': '\u0000\u00ff garbage', 'tls.key': 'x' }),
        /holds no PEM certificate/,
      ],
      [
        'truncated PEM',
        async () => {
          const c = await createSelfSignedCa({ trustDomain: TD });
          keyPems.push(c.keyPem);
          return { 'tls.crt': c.certPem.slice(0, c.certPem.length / 2), 'tls.key': c.keyPem };
        },
        /holds no PEM certificate/,
      ],
      [
        'a key of an unsupported type',
        async () => {
          const c = await opensslCa({
            keyArgs: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
            extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
          });
          keyPems.push(c.keyPem);
          return { 'tls.crt': c.certPem, 'tls.key': c.keyPem };
        },
        /secp256k1\) is not supported/,
      ],
      [
        'a key that does not match',
        async () => {
          const a = await createSelfSignedCa({ trustDomain: TD });
          const b = await createSelfSignedCa({ trustDomain: TD });
          keyPems.push(a.keyPem, b.keyPem);
          return { 'tls.crt': a.certPem, 'tls.key': b.keyPem };
        },
        /tls\.key does not belong to the first certificate/,
      ],
      [
        'a certificate without the CA bit',
        async () => {
          const real = await loadCa(await createSelfSignedCa({ trustDomain: TD }));
          const leaf = await issueSvid(real, { spiffeId: `spiffe://${TD}/ns/x/sa/y`, durationSeconds: 600 });
          keyPems.push(leaf.keyPem);
          return { 'tls.crt': leaf.certChainPem, 'tls.key': leaf.keyPem };
        },
        /not a CA certificate/,
      ],
      [
        'an expired CA',
        async () => {
          const c = await createSelfSignedCa({
            trustDomain: TD,
            now: new Date(Date.now() - 7200_000),
            validitySeconds: 3600,
          });
          keyPems.push(c.keyPem);
          return { 'tls.crt': c.certPem, 'tls.key': c.keyPem };
        },
        /the CA certificate expired at/,
      ],
      [
        'an RSA-1024 CA',
        async () => {
          const c = await opensslCa({
            keyArgs: ['-newkey', 'rsa:1024'],
            extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
          });
          keyPems.push(c.keyPem);
          return { 'tls.crt': c.certPem, 'tls.key': c.keyPem };
        },
        /RSA-1024, which is too weak/,
      ],
      [
        'a CA whose basicConstraints extension is not valid DER',
        async () => {
          const c = await createSelfSignedCa({ trustDomain: TD });
          keyPems.push(c.keyPem);
          const certPem = caWithExtensions(c.keyPem, [TRUNCATED_BASIC_CONSTRAINTS, GOOD_KEY_USAGE_CA]);
          return { 'tls.crt': certPem, 'tls.key': c.keyPem };
        },
        /the basicConstraints extension is not valid DER in the certificate .*: reissue the certificate/,
      ],
    ];

    it('each is reported on status with a clear message while the operator keeps running', async () => {
      await createIdentity(kc, ns, 'ca-victim', {
        ...base,
        serviceAccountName: 'victim',
        secretName: 'victim-svid',
      });
      for (const [what, make, message] of cases) {
        await putCaSecret(kc, sys, 'ca', await make());
        const c = await until(`CAUnavailable for ${what}`, 30_000, async () => {
          const cond = ready(await getIdentity(kc, ns, 'ca-victim'));
          return cond?.reason === 'CAUnavailable' && message.test(cond.message) ? cond : undefined;
        });
        expect(c.message, what).to.contain(`the CA Secret ${sys}/ca is unusable`);
      }
      expect(op.pid).to.be.a('number');
      expect(await op.metric('svid_operator_identity_ready')).to.equal(0);
    });
  });
});
