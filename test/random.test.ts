import { expect } from 'chai';
import seedrandom from 'seedrandom';
import { Random } from '../src/random';

describe('Random', () => {
  it('should repeat the same draws for the same seed and differ for another', () => {
    const a = new Random(7);
    const b = new Random(7);
    const c = new Random(8);
    const da = [a.uniform(), a.uniform(), a.uniform()];
    expect([b.uniform(), b.uniform(), b.uniform()]).to.deep.equal(da);
    expect([c.uniform(), c.uniform(), c.uniform()]).not.to.deep.equal(da);
  });

  it("should give seedrandom's Alea stream for the same seed", () => {
    for (const seed of [7, 'run/upsample', '']) {
      const ours = new Random(seed);
      const alea = seedrandom.alea(String(seed));
      for (let i = 0; i < 10000; i++) expect(ours.uniform()).to.equal(alea());
    }
  });

  it('should draw integers below n and pick items by the same draws', () => {
    const a = new Random('pick');
    const b = new Random('pick');
    const items = ['a', 'b', 'c'];
    for (let i = 0; i < 1000; i++) {
      const n = a.int(3);
      expect(n).to.be.oneOf([0, 1, 2]);
      expect(b.choice(items)).to.equal(items[n]);
    }
  });

  it('should draw Beta(0.2, 0.2) with variance 0.179 and two thirds of draws near 0 or 1', () => {
    // Var = ab / ((a + b)^2 (a + b + 1)) = 0.04 / (0.16 * 1.4) = 0.178571.
    const draw = new Random(3).beta(0.2, 0.2);
    const n = 100000;
    let sum = 0;
    let sumSq = 0;
    let extreme = 0;
    for (let i = 0; i < n; i++) {
      const v = draw();
      sum += v;
      sumSq += v * v;
      if (v < 0.1 || v > 0.9) extreme++;
    }
    const mean = sum / n;
    expect(sumSq / n - mean * mean).to.be.closeTo(0.179, 0.005);
    expect(extreme / n).to.be.closeTo(0.67, 0.02);
  });
});
