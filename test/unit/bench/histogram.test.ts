import { expect } from 'chai';
import { countBetween, histogramBuckets, quantileBetween } from '../../../bench/histogram.ts';

const scrape = (counts: Record<string, [number, number, number]>) =>
  Object.entries(counts)
    .flatMap(([result, [a, b, inf]]) => [
      `# HELP x_seconds x`,
      `x_seconds_bucket{le="0.1",result="${result}"} ${a}`,
      `x_seconds_bucket{le="1",result="${result}"} ${b}`,
      `x_seconds_bucket{le="+Inf",result="${result}"} ${inf}`,
      `x_seconds_count{result="${result}"} ${inf}`,
      `x_seconds_sum{result="${result}"} 1.5`,
    ])
    .join('\n');

describe('bench: histogram quantiles between scrapes', () => {
  it('sums label sets, subtracts the earlier scrape and picks the bucket bound', () => {
    const before = histogramBuckets(scrape({ success: [10, 10, 10], error: [0, 0, 0] }), 'x_seconds');
    const after = histogramBuckets(scrape({ success: [60, 100, 110], error: [0, 0, 10] }), 'x_seconds');
    expect(countBetween(before, after)).to.equal(110);
    expect(quantileBetween(before, after, 0.5)).to.equal(1); // 50 of 110 within 0.1 s: below the median
    expect(quantileBetween(before, after, 0.4)).to.equal(0.1);
    expect(quantileBetween(before, after, 0.99)).to.equal(Infinity);
  });

  it('filters by labels and answers null without observations', () => {
    const text = scrape({ success: [1, 2, 3], error: [0, 5, 5] });
    const err = histogramBuckets(text, 'x_seconds', { result: 'error' });
    expect(quantileBetween(new Map(), err, 0.5)).to.equal(1);
    expect(quantileBetween(err, err, 0.5)).to.equal(null);
    expect(histogramBuckets(text, 'y_seconds').size).to.equal(0);
  });

  it('skips malformed lines', () => {
    const text = 'x_seconds_bucket{le="0.1"} \nx_seconds_bucket{result="a"} 3\nx_seconds_bucket{le="+Inf"} 4';
    expect([...histogramBuckets(text, 'x_seconds')]).to.deep.equal([[Infinity, 4]]);
  });
});
