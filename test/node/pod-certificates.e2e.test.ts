import { expect } from 'chai';
import { runLocalPodCertE2e, summarizePodCert } from '../../hack/e2e/pod-certificates.ts';
import { requireNodeHost } from '../harness/node-host.ts';

// Pod certificates end to end on a real node (hack/e2e/pod-certificates.ts): the operator, installed by
// the chart as the signer identity.svid.dev/svid, issues the SVIDs the kubelet projects into two pods
// (podCertificate + clusterTrustBundle sources); the example client calls the example server over mTLS
// through the library while the kubelet refreshes both certificates twice. About 25-40 min.
describe('pod certificates end to end on a real local node', function () {
  this.timeout(80 * 60_000);

  before(async function () {
    // Skipped with the reason on a host that cannot run a node; under CI=true that is a failure.
    await requireNodeHost(this);
  });

  it('two pods talk mTLS with kubelet-projected SVIDs across two kubelet refreshes, no failed request', async function () {
    const r = await runLocalPodCertE2e({
      log: (line) => console.error(`      pod-certificate e2e: ${line}`),
    });
    if ('skipped' in r) throw new Error(`the node host check passed but the e2e skipped: ${r.skipped}`);
    console.log(summarizePodCert(r.result).replace(/^/gm, '      '));
    const res = r.result;
    expect(res.failed).to.equal(0);
    expect(res.requests).to.be.greaterThan(100);
    expect(res.refreshesSeen.server).to.be.at.least(2);
    expect(res.refreshesSeen.client).to.be.at.least(2);
    // The first issuance and one per refresh, for each pod.
    expect(res.issuedPerPod.server).to.be.at.least(3);
    expect(res.issuedPerPod.client).to.be.at.least(3);
    expect(res.serverSerialsSeenByClient).to.be.at.least(3);
  });
});
