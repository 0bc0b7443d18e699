// The informer against the real API server: paged lists follow the server's continue tokens, and the
// watch opened from the list's resourceVersion delivers what changes afterwards.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { identitySource } from '../../src/reconcilers/workload-identity/controller.ts';
import { Informer, type Source } from '../../src/controller-runtime/informer.ts';
import type { WorkloadIdentity } from '../../src/reconcilers/workload-identity/types.ts';
import { PooledKubeConfig } from '../../src/kube/pooled-kubeconfig.ts';
import { loadKubeClient } from '../../src/kube/load.ts';
import { createIdentity, createNamespace, until } from '../harness/identities.ts';
import { getControlPlane } from '../harness/shared-control-plane.ts';

const quiet = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};

describe('informer against the real API server', function () {
  this.timeout(20 * 60_000);

  it('lists 25 identities in pages of 10 through continue tokens, then watches from there', async () => {
    const cp = await getControlPlane();
    const kc = new PooledKubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const ns = `inf-${randomBytes(3).toString('hex')}`;
    await createNamespace(kc, ns);
    for (let i = 0; i < 25; i++)
      await createIdentity(kc, ns, `w${i}`, { serviceAccountName: 'sa', secretName: `s${i}` });
    const client = await loadKubeClient({ KUBECONFIG: cp.kubeconfigPath });
    const real = identitySource(client, ns);
    const pages: { limit: number; continue?: string; got: number; next?: string }[] = [];
    const source: Source<WorkloadIdentity> = {
      ...real,
      async list(page) {
        const result = await real.list(page);
        pages.push({ ...page, got: result.items.length, next: result.continue });
        return result;
      },
    };
    const informer = new Informer(client, 'paged', source, quiet, { pageSize: 10 });
    const upserts: string[] = [];
    informer.on((event, w) => void (event === 'upsert' && upserts.push(w.metadata.name)));
    informer.start();
    try {
      await informer.synced;
      expect(pages.map((p) => [p.limit, p.got])).to.deep.equal([
        [10, 10],
        [10, 10],
        [10, 5],
      ]);
      expect(pages[0]?.continue).to.equal(undefined);
      expect(pages[1]?.continue).to.equal(pages[0]?.next).and.to.be.a('string');
      expect(pages[2]?.continue).to.equal(pages[1]?.next).and.to.be.a('string');
      expect(pages[2]?.next ?? '', 'no continue token after the last page').to.equal('');
      expect(informer.cache.size).to.equal(25);
      expect(new Set(upserts).size).to.equal(25);
      await createIdentity(kc, ns, 'late', { serviceAccountName: 'sa', secretName: 'late' });
      await until('the watch delivers the new identity', 30_000, async () => informer.get(`${ns}/late`));
      expect(informer.alive(1)).to.equal(true);
    } finally {
      informer.stop();
    }
  });
});
