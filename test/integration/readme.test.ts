import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { ensureBinaries } from '../../hack/lib/binaries.ts';
import type { ControlPlane } from '../../hack/lib/control-plane.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

interface Block {
  lang: string;
  body: string;
}

/** The fenced code blocks of one "## " section of the README, in order. */
export async function readmeBlocks(section: string): Promise<Block[]> {
  const readme = await readFile(`${root}README.md`, 'utf8');
  const start = readme.indexOf(`\n## ${section}\n`);
  if (start < 0) throw new Error(`README has no "## ${section}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  const text = readme.slice(start, end < 0 ? undefined : end);
  return [...text.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1] ?? '', body: m[2] ?? '' }));
}

describe('README "Install" blocks, applied as written to the real API server', function () {
  this.timeout(5 * 60_000);
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  let blocks: Block[];

  before(async () => {
    cp = await getControlPlane();
    kc = kubeConfig(cp);
    blocks = await readmeBlocks('Install');
  });

  after(async () => {
    const { helm } = await ensureBinaries();
    await run(helm, [
      'uninstall',
      'svid-operator',
      '-n',
      'svid-system',
      `--kubeconfig=${cp.kubeconfigPath}`,
    ]).catch(() => undefined);
    await kc
      .makeApiClient(k8s.CoreV1Api)
      .deleteNamespace({ name: 'shop' })
      .catch(() => undefined);
  });

  it('installs the chart with the helm command from the README', async () => {
    const sh = blocks.filter((b) => b.lang === 'sh' && b.body.includes('helm install'));
    expect(sh).to.have.length(1);
    const words = (sh[0]?.body ?? '').replace(/\\\n/g, ' ').trim().split(/\s+/);
    expect(words[0]).to.equal('helm');
    const { helm } = await ensureBinaries();
    const { stdout } = await run(helm, [...words.slice(1), `--kubeconfig=${cp.kubeconfigPath}`], {
      cwd: root,
    });
    expect(stdout).to.contain('STATUS: deployed');
    // NOTES.txt tells the user what to apply next.
    expect(stdout).to.contain('kind: WorkloadIdentity');
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({
      name: 'svid-operator',
      namespace: 'svid-system',
    });
    expect(deployment.spec?.template.spec?.containers[0]?.args).to.include('--trust-domain=example.org');
    // The development CA is the operator's to create (--bootstrap-dev-ca), not Helm's: no CA key in the
    // release, none rendered by helm (no pod runs here, so the Secret does not exist yet).
    expect(deployment.spec?.template.spec?.containers[0]?.args).to.include('--bootstrap-dev-ca=true');
    const ca = await kc
      .makeApiClient(k8s.CoreV1Api)
      .readNamespacedSecret({ name: 'svid-operator-ca', namespace: 'svid-system' })
      .then(
        () => 'exists',
        (err: unknown) => (err as { code?: number }).code,
      );
    expect(ca).to.equal(404);
  });

  it('applies every YAML block as written', async () => {
    const yaml = blocks.filter((b) => b.lang === 'yaml');
    expect(yaml.length).to.be.greaterThanOrEqual(2);
    for (const block of yaml) {
      const out = await cp.kubectlRun(['apply', '-f', '-'], block.body);
      expect(out).to.match(/(created|configured|unchanged)/);
    }
    const wid = (await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
      group: 'identity.svid.dev',
      version: 'v1alpha1',
      namespace: 'shop',
      plural: 'workloadidentities',
      name: 'payments',
    })) as { spec: { secretName: string; privateKey: { algorithm: string } } };
    expect(wid.spec.secretName).to.equal('payments-svid');
    expect(wid.spec.privateKey.algorithm).to.equal('ECDSA');
    const deployment = await kc
      .makeApiClient(k8s.AppsV1Api)
      .readNamespacedDeployment({ name: 'payments', namespace: 'shop' });
    expect(deployment.spec?.template.spec?.volumes?.[0]?.secret?.secretName).to.equal('payments-svid');
  });
});

describe('README "Use the SVID in Node.js" code', function () {
  this.timeout(120_000);

  it('type-checks as written against the built @svid-operator/mtls package', async () => {
    const { mkdir, writeFile, rm } = await import('node:fs/promises');
    const blocks = (await readmeBlocks('Use the SVID in Node.js')).filter((b) => b.lang === 'ts');
    expect(blocks.length).to.be.at.least(2);
    // Inside the repository, where @svid-operator/mtls is the workspace link; without the source condition
    // tsc reads the package's built declarations, as an outside user's would.
    const tsc = `${root}node_modules/typescript/bin/tsc`;
    await run(process.execPath, [tsc, '-p', 'packages/mtls/tsconfig.json'], { cwd: root });
    const dir = `${root}.cache/readme-check`;
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const files = [];
    for (const [i, block] of blocks.entries()) {
      const file = `${dir}/block${i}.ts`;
      await writeFile(file, `${block.body}\nexport {};\n`);
      files.push(file);
    }
    const args = [
      '--ignoreConfig',
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2024',
      '--skipLibCheck',
      '--allowImportingTsExtensions',
      '--types',
      'node',
      ...files,
    ];
    const result = await run(process.execPath, [tsc, ...args], { cwd: root }).then(
      () => '',
      (err: { stdout: string }) => err.stdout,
    );
    await rm(dir, { recursive: true, force: true });
    expect(result).to.equal('');
  });
});
