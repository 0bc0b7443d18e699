import { expect } from 'chai';
import { runLocalE2e } from '../../hack/e2e/local.ts';
import { summarize } from '../../hack/e2e/scenario.ts';
import { requireNodeHost } from '../harness/node-host.ts';

// The product as users run it, on a real node: see hack/e2e/scenario.ts for the steps. The scenario
// throws at the first broken expectation; the figures are checked again here.
describe('end-to-end on a real local node (npm run e2e)', function () {
  this.timeout(90 * 60_000);

  it('mTLS through rotations, a refused stranger, operator failover and CA rotation, 8 min without restart', async function () {
    // A host that cannot run a node: skipped with the reason, or under CI=true a failure.
    await requireNodeHost(this);
    const r = await runLocalE2e();
    if ('skipped' in r) throw new Error(`the host stopped being able to run a node: ${r.skipped}`);
    console.log(summarize(r.result).replace(/^/gm, '      '));
    console.log(
      `      build (cached after the first run): ${r.buildSeconds} s; cluster start: ${r.clusterSeconds} s`,
    );
    const res = r.result;
    expect(res.failed).to.equal(0);
    expect(res.requests).to.be.greaterThan(500);
    expect(res.rotationsSeen.server).to.be.at.least(3);
    expect(res.rotationsSeen.client).to.be.at.least(3);
    expect(res.strangerRefused).to.equal(3);
    expect(res.strangerAccepted).to.equal(0);
    expect(res.operatorRestarts).to.equal(0);
    expect(res.operatorRunSeconds).to.be.at.least(480);
    expect(res.operatorTakeover).to.equal(true);
    expect(res.caRotationCompleted).to.equal(true);
    expect(res.metricsScraped).to.equal(true);
  });
});
