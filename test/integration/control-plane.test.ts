import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { ControlPlane, freePort, readyz } from '../../hack/lib/control-plane.ts';
import { readCrds } from '../../hack/lib/crds.ts';
import { getControlPlane, kubeConfig } from '../harness/shared-control-plane.ts';

describe('local control plane (smoke)', function () {
  // A cold run builds the binaries first; that is minutes on 2 cores.
  this.timeout(45 * 60_000);
  let cp: ControlPlane;
  let core: k8s.CoreV1Api;
  const ns = `smoke-${randomBytes(3).toString('hex')}`;

  before(async () => {
    cp = await getControlPlane();
    core = kubeConfig(cp).makeApiClient(k8s.CoreV1Api);
  });

  it('answers /readyz "ok" to kubectl with the harness kubeconfig', async () => {
    const out = await cp.kubectlRun(['get', '--raw', '/readyz']);
    expect(out.trim()).to.equal('ok');
  });

  it('creates a namespace and a Secret and reads them back through @kubernetes/client-node', async () => {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'smoke' }, type: 'Opaque', stringData: { hello: 'world' } },
    });
    const secret = await core.readNamespacedSecret({ namespace: ns, name: 'smoke' });
    expect(Buffer.from(secret.data?.hello ?? '', 'base64').toString()).to.equal('world');
    const namespace = await core.readNamespace({ name: ns });
    expect(namespace.status?.phase).to.equal('Active');
  });

  it('has every CRD from crds/ Established', async () => {
    const api = kubeConfig(cp).makeApiClient(k8s.ApiextensionsV1Api);
    const crds = await readCrds();
    expect(crds.map((c) => c.metadata?.name)).to.include('workloadidentities.identity.svid.dev');
    for (const crd of crds) {
      const live = await api.readCustomResourceDefinition({ name: crd.metadata?.name ?? '' });
      const established = live.status?.conditions?.find((c) => c.type === 'Established');
      expect(established?.status, crd.metadata?.name).to.equal('True');
    }
  });

  it('stores the CRD schema whole: defaults and CEL rules survive the round trip', async () => {
    const api = kubeConfig(cp).makeApiClient(k8s.ApiextensionsV1Api);
    const live = await api.readCustomResourceDefinition({ name: 'workloadidentities.identity.svid.dev' });
    const spec = live.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec;
    expect(spec?.properties?.duration?._default).to.equal('1h');
    expect(spec?.x_kubernetes_validations?.[0]?.rule).to.contain('renewBefore');
  });

  it('garbage-collects a Secret whose owner is deleted (kube-controller-manager runs)', async () => {
    const owner = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'owner' } },
    });
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: 'owned',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' },
          ],
        },
        stringData: { a: 'b' },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner' });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await core.readNamespacedSecret({ namespace: ns, name: 'owned' });
      } catch (err) {
        if (err instanceof k8s.ApiException && err.code === 404) break;
        throw err;
      }
      if (Date.now() > deadline) expect.fail('owned Secret was not garbage-collected within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  });

  it('starts again with new ports when the API server port was taken between choosing and binding it', async () => {
    // The race freePort() leaves open: the kernel hands the released port to someone else first.
    const squatter = net.createServer();
    squatter.listen(0, '127.0.0.1');
    await once(squatter, 'listening');
    const taken = (squatter.address() as net.AddressInfo).port;
    let picks = 0;
    // etcd client, etcd peer, then the API server: the first attempt's third port is the taken one.
    const pickPort = () => (++picks === 3 ? Promise.resolve(taken) : freePort());
    let second: ControlPlane | undefined;
    try {
      second = await ControlPlane.start({ controllerManager: false, pickPort });
      expect(picks).to.equal(6);
      expect(second.apiServerUrl).to.not.contain(`:${taken}`);
      expect(await readyz(second.apiServerUrl, second.pkiDir)).to.equal(true);
    } finally {
      await second?.stop();
      squatter.close();
    }
  });
});
