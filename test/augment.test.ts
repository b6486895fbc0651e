import { expect } from 'chai';
import { spawnSync } from 'child_process';
import { join } from 'path';
import * as tf from '@tensorflow/tfjs';
import { createDataSet, DataSet, Part, PartCode } from '../src/dataset/dataset';
import { Random } from '../src/random';
import {
  mixup,
  mixupYielding,
  nearestNeighbours,
  smoothLabels,
  upsample,
  UPSAMPLING_MODES,
} from '../src/augment';
import { copyYielding } from '../src/dataset/dataset';
import { countTurns, refusal } from './helpers';

interface RowSpec {
  x: number[];
  y: number[];
  part?: PartCode;
}

function build(labels: string[], rows: RowSpec[]): DataSet {
  return createDataSet({
    x: Float32Array.from(rows.flatMap((r) => r.x)),
    y: Float32Array.from(rows.flatMap((r) => r.y)),
    dim: rows[0].x.length,
    labels,
    parts: Uint8Array.from(rows, (r) => r.part ?? Part.train),
    sources: rows.map((_, i) => ({ file: `row${i}.wav` })),
  });
}

function rowX(data: DataSet, r: number): number[] {
  return Array.from(data.x.subarray(r * data.dim, (r + 1) * data.dim));
}

function rowY(data: DataSet, r: number): number[] {
  const k = data.labels.length;
  return Array.from(data.y.subarray(r * k, (r + 1) * k));
}

/** Training rows whose label for class `c` is exactly 1. */
function trainCount(data: DataSet, c: number): number {
  let n = 0;
  for (let r = 0; r < data.rows; r++) {
    if (data.parts[r] === Part.train && rowY(data, r)[c] === 1) n++;
  }
  return n;
}

/** A copy of every array, to check later that a stage wrote into none of them. */
function snapshot(data: DataSet) {
  return {
    x: Array.from(data.x),
    y: Array.from(data.y),
    parts: Array.from(data.parts),
    synthetic: Array.from(data.synthetic),
  };
}

function oneHot(c: number, classes: number): number[] {
  return Array.from({ length: classes }, (_, i) => (i === c ? 1 : 0));
}

/**
 * Classes A, B, C with 100, 10, 10 training rows, each near its own corner (A at 0, B at 10,
 * C at 20 in every feature), plus 2 validation rows per class and one test row.
 */
function threeClasses(): DataSet {
  const rows: RowSpec[] = [];
  const sizes = [100, 10, 10];
  sizes.forEach((n, c) => {
    for (let i = 0; i < n + 2; i++) {
      const wobble = ((i * 7 + c * 3) % 11) / 10;
      rows.push({
        x: [c * 10 + wobble, c * 10 + 1 - wobble, c * 10 + (i % 2)],
        y: oneHot(c, 3),
        part: i < n ? Part.train : Part.validation,
      });
    }
  });
  rows.push({ x: [5, 5, 5], y: [0, 1, 0], part: Part.test });
  return build(['A', 'B', 'C'], rows);
}

describe('upsample', async () => {
  for (const mode of UPSAMPLING_MODES) {
    it(`should bring every short class to the target in ${mode} mode (case 1)`, async () => {
      const data = threeClasses();
      const before = snapshot(data);
      const out = await upsample(data, { ratio: 0.5, mode, random: new Random(1) });

      // target = trunc(max(100, 10, 10) * 0.5) = 50; missing B = 50 - 10 = 40, C = 40, A none.
      expect([0, 1, 2].map((c) => trainCount(out, c))).to.deep.equal([100, 50, 50]);
      expect(out.rows).to.equal(data.rows + 80);
      expect(snapshot(data)).to.deep.equal(before);

      for (let r = 0; r < data.rows; r++) {
        expect(rowX(out, r)).to.deep.equal(rowX(data, r));
        expect(rowY(out, r)).to.deep.equal(rowY(data, r));
        expect(out.parts[r]).to.equal(data.parts[r]);
        expect(out.synthetic[r]).to.equal(0);
      }
      for (let r = data.rows; r < out.rows; r++) {
        expect(out.parts[r]).to.equal(Part.train);
        expect(out.synthetic[r]).to.equal(1);
        // Every mode blends rows of one class, so a new row stays in its class's box.
        const c = rowY(out, r).indexOf(1);
        for (const v of rowX(out, r)) expect(v).to.be.within(c * 10, c * 10 + 1);
      }
    });
  }

  it('should copy label and source of the source row in repeat mode', async () => {
    const rows: RowSpec[] = [];
    for (let i = 0; i < 6; i++) rows.push({ x: [i], y: [1, 0] });
    for (let i = 0; i < 2; i++) rows.push({ x: [100 + i], y: [0, 1] });
    const data = build(['A', 'B'], rows);
    const out = await upsample(data, { ratio: 1, mode: 'repeat', random: new Random(3) });

    // target = trunc(6 * 1) = 6: B gains 4 copies of its rows 6 and 7.
    expect(out.rows).to.equal(12);
    for (let r = 8; r < 12; r++) {
      const from = rowX(out, r)[0] - 100 + 6;
      expect(from).to.be.oneOf([6, 7]);
      expect(rowY(out, r)).to.deep.equal([0, 1]);
      expect(out.sources[r]).to.deep.equal({ file: `row${from}.wav` });
    }
  });

  it('should return the data unchanged for ratio 0', async () => {
    const data = threeClasses();
    expect(await upsample(data, { ratio: 0, mode: 'smote', random: new Random(1) })).to.equal(data);
  });

  it('should keep SMOTE rows between two rows of the same class (case 12)', async () => {
    const small = build(
      ['0', '1'],
      [0, 1, 100, 101, 102].map((v) => ({ x: [v], y: oneHot(v < 100 ? 0 : 1, 2) })),
    );
    for (let seed = 0; seed < 200; seed++) {
      const out = await upsample(small, { ratio: 1, mode: 'smote', random: new Random(seed) });
      // target = trunc(3 * 1) = 3: class 0 gains 3 - 2 = 1 row, s + u * (other - s) in [0, 1].
      expect(out.rows).to.equal(6);
      expect(rowX(out, 5)[0]).to.be.within(0, 1);
      expect(rowY(out, 5)).to.deep.equal([1, 0]);
    }

    const rows: RowSpec[] = [];
    for (let v = 0; v <= 6; v++) rows.push({ x: [v], y: [1, 0] });
    for (let v = 100; v <= 129; v++) rows.push({ x: [v], y: [0, 1] });
    const out = await upsample(build(['0', '1'], rows), {
      ratio: 1,
      mode: 'smote',
      random: new Random(12),
    });
    // target = trunc(30 * 1) = 30: class 0 gains 30 - 7 = 23 rows, all inside [0, 6].
    expect(out.rows).to.equal(37 + 23);
    for (let r = 37; r < out.rows; r++) expect(rowX(out, r)[0]).to.be.within(0, 6);
  });

  it('should give a class of one row copies in smote mode', async () => {
    const rows: RowSpec[] = [{ x: [3, 4], y: [1, 0] }];
    for (let i = 0; i < 4; i++) rows.push({ x: [50 + i, 0], y: [0, 1] });
    const out = await upsample(build(['A', 'B'], rows), {
      ratio: 1,
      mode: 'smote',
      random: new Random(2),
    });
    // target = trunc(4 * 1) = 4: A gains 3 copies of its only row.
    expect(out.rows).to.equal(8);
    for (let r = 5; r < 8; r++) expect(rowX(out, r)).to.deep.equal([3, 4]);
  });

  it('should upsample the positives when they are the binary minority (case 4)', async () => {
    const rows: RowSpec[] = [];
    for (let i = 0; i < 10; i++) rows.push({ x: [i], y: [1] });
    for (let i = 0; i < 30; i++) rows.push({ x: [100 + i], y: [0] });
    for (let i = 0; i < 10; i++) rows.push({ x: [200 + i], y: [-1] });
    rows.push({ x: [7], y: [1], part: Part.validation });
    const data = build(['X'], rows);

    for (const mode of UPSAMPLING_MODES) {
      const out = await upsample(data, { ratio: 1, mode, random: new Random(4) });
      // N = 50, pos = 10, N - pos = 40 (30 zeros + 10 negatives); target = trunc(40 * 1) = 40;
      // positives are fewer, so 40 - 10 = 30 new positive rows made from positive rows only.
      expect(out.rows).to.equal(51 + 30);
      for (let r = 51; r < out.rows; r++) {
        expect(rowY(out, r)).to.deep.equal([1]);
        expect(rowX(out, r)[0]).to.be.within(0, 9);
      }
    }

    // ratio 0.5: target = trunc(40 * 0.5) = 20, so 20 - 10 = 10 new rows.
    expect((await upsample(data, { ratio: 0.5, random: new Random(4) })).rows).to.equal(51 + 10);
  });

  it('should upsample the non-event side, zeros and negatives together, when it is smaller', async () => {
    const rows: RowSpec[] = [];
    for (let i = 0; i < 40; i++) rows.push({ x: [i], y: [1] });
    for (let i = 0; i < 5; i++) rows.push({ x: [100 + i], y: [0] });
    for (let i = 0; i < 5; i++) rows.push({ x: [200 + i], y: [-1] });
    const data = build(['X'], rows);
    const out = await upsample(data, { ratio: 1, mode: 'repeat', random: new Random(9) });

    // N = 50, pos = 40, N - pos = 10; target = trunc(40 * 1) = 40; 40 - 10 = 30 new rows, each a
    // copy of a 0 or -1 row with that row's label.
    expect(out.rows).to.equal(80);
    const labels = new Set<number>();
    for (let r = 50; r < 80; r++) {
      const [v] = rowX(out, r);
      const [label] = rowY(out, r);
      expect(label).to.equal(v >= 200 ? -1 : 0);
      expect(v >= 100 && v <= 104).to.equal(label === 0);
      labels.add(label);
    }
    expect([...labels].sort()).to.deep.equal([-1, 0]);
  });

  it('should name a short class that has no training rows', async () => {
    const rows: RowSpec[] = [];
    for (let i = 0; i < 10; i++) rows.push({ x: [i], y: [1, 0] });
    rows.push({ x: [50], y: [0, 1], part: Part.validation });
    expect(
      (await refusal(upsample(build(['A', 'B'], rows), { ratio: 0.5, random: new Random(1) })))
        .message,
    ).to.match(/upsampling: class "B" has no training rows to upsample from/);
  });

  it('should allow only repeat for multi-label data', async () => {
    const rows: RowSpec[] = [
      { x: [0], y: [1, 1, 0] },
      { x: [1], y: [1, 0, 0] },
      { x: [2], y: [1, 0, 0] },
      { x: [3], y: [0, 0, 1] },
    ];
    const data = build(['A', 'B', 'C'], rows);
    for (const mode of ['mean', 'linear', 'smote'] as const) {
      expect(
        (await refusal(upsample(data, { ratio: 1, mode, random: new Random(1) }))).message,
      ).to.match(/upsampling mode: multi-label data allows only "repeat"/);
    }
    // A 3, B 1, C 1: target 3; B and C gain 2 rows each (a copy of row 0 also counts for A).
    const out = await upsample(data, { ratio: 1, mode: 'repeat', random: new Random(1) });
    expect(out.rows).to.equal(8);
  });

  it('should refuse an unknown mode, a ratio outside [0, 1] and a bad k', async () => {
    const data = threeClasses();
    const random = new Random(1);
    expect(
      (await refusal(upsample(data, { ratio: 0.5, mode: 'nearest' as 'smote', random }))).message,
    ).to.match(/upsampling mode: expected one of repeat, mean, linear, smote; got "nearest"/);
    expect((await refusal(upsample(data, { ratio: 1.5, random }))).message).to.match(
      /upsampling ratio/,
    );
    expect((await refusal(upsample(data, { ratio: NaN, random }))).message).to.match(
      /upsampling ratio/,
    );
    expect(
      (await refusal(upsample(data, { ratio: 1, mode: 'smote', k: 0, random }))).message,
    ).to.match(/upsampling k/);
  });

  it('should repeat itself for a seed and differ for another', async () => {
    const data = threeClasses();
    for (const mode of UPSAMPLING_MODES) {
      const a = await upsample(data, { ratio: 0.5, mode, random: new Random(5) });
      const b = await upsample(data, { ratio: 0.5, mode, random: new Random(5) });
      const c = await upsample(data, { ratio: 0.5, mode, random: new Random(6) });
      expect(Array.from(b.x)).to.deep.equal(Array.from(a.x));
      expect(Array.from(c.x)).not.to.deep.equal(Array.from(a.x));
    }
  });

  it('should leave the tensor count as it was after a smote upsampling', async () => {
    const before = tf.memory().numTensors;
    await upsample(threeClasses(), { ratio: 1, mode: 'smote', random: new Random(1) });
    expect(tf.memory().numTensors).to.equal(before);
  });
});

describe('nearestNeighbours', async () => {
  it('should give the nearest rows, nearest first, never the query itself', async () => {
    const x = Float32Array.of(0, 1, 2, 10, 11, 2.5);
    expect(await nearestNeighbours(x, 1, [0, 1, 2, 3, 4, 5], [0, 3], 2)).to.deep.equal([
      Int32Array.of(1, 2),
      Int32Array.of(4, 5),
    ]);
  });

  it('should order equal distances lowest index first and return fewer for a small class', async () => {
    // Rows 1 and 2 are both 1 away from row 0; rows 3 and 4 are outside the class.
    const x = Float32Array.of(5, 6, 4, 5.1, 5.2);
    expect(await nearestNeighbours(x, 1, [0, 1, 2], [0], 5)).to.deep.equal([Int32Array.of(1, 2)]);
    expect(await nearestNeighbours(x, 1, [2, 1, 0], [0], 1)).to.deep.equal([Int32Array.of(1)]);
    expect(await nearestNeighbours(x, 1, [0], [0], 5)).to.deep.equal([new Int32Array(0)]);
  });

  it('should answer repeated queries, a row listed twice and typed index lists', async () => {
    // One feature: row r holds r * r, so distances are distinct and easy to rank by hand.
    const x = Float32Array.from({ length: 8 }, (_, r) => r * r);
    // Row 2 is listed twice among the rows; query 2 asked twice; query 7 is not among the rows.
    const rows = Int32Array.of(1, 2, 3, 2, 5);
    const queries = Int32Array.of(2, 7, 2, 5);
    const found = await nearestNeighbours(x, 1, rows, queries, 2);
    // 2 (4): 1 (1) at 3, 3 (9) at 5, 5 (25) at 21; itself never, either copy.
    // 7 (49): 5 at 24, 3 at 40. 5 (25): 3 at 16, then 2 at 21 (the copy of 2 at the same place).
    expect(found.map((f) => Array.from(f))).to.deep.equal([
      [1, 3],
      [5, 3],
      [1, 3],
      [3, 2],
    ]);
  });

  it('should agree with plain distances far from the origin and in small chunks', async () => {
    const random = new Random(11);
    const n = 60;
    const dim = 64;
    // Rows near 1000 in every feature and close to each other, where |a|^2 + |b|^2 - 2ab in
    // float32 alone cannot tell them apart.
    const x = Float32Array.from({ length: n * dim }, () => 1000 + random.uniform() * 0.01);
    const rows = Array.from({ length: 40 }, (_, i) => i + 20);
    const queries = [20, 33, 59, 0];
    const before = tf.memory().numTensors;
    const found = await nearestNeighbours(x, dim, rows, queries, 5, { maxMatrixBytes: 1 });
    expect(tf.memory().numTensors).to.equal(before);

    queries.forEach((q, i) => {
      const distance = (r: number) => {
        let sum = 0;
        for (let d = 0; d < dim; d++) sum += (x[r * dim + d] - x[q * dim + d]) ** 2;
        return sum;
      };
      const expected = rows
        .filter((r) => r !== q)
        .sort((a, b) => distance(a) - distance(b) || a - b)
        .slice(0, 5);
      expect(Array.from(found[i])).to.deep.equal(expected);
    });
  });
});

/**
 * The `k` nearest of `rows` to each query from the definition: float64 distances, ties lowest
 * index first, never the query itself.
 */
function bruteNearest(
  x: Float32Array,
  dim: number,
  rows: number[],
  queries: number[],
  k: number,
): number[][] {
  return queries.map((q) => {
    const distance = (r: number) => {
      let sum = 0;
      for (let d = 0; d < dim; d++) sum += (x[r * dim + d] - x[q * dim + d]) ** 2;
      return sum;
    };
    return rows
      .filter((r) => r !== q)
      .map((r) => [r, distance(r)])
      .sort((a, b) => a[1] - b[1] || a[0] - b[0])
      .slice(0, k)
      .map(([r]) => r);
  });
}

describe('nearestNeighbours on awkward values', () => {
  it('should order rows at one distance lowest index first, however many there are', async () => {
    // Rows 1, 2 and 3 (values 0, 2, 2) are all 1 away from row 4 (value 1).
    const found = await nearestNeighbours(
      Float32Array.of(3, 0, 2, 2, 1),
      1,
      [0, 1, 2, 3, 4],
      [4],
      1,
    );
    expect(Array.from(found[0])).to.deep.equal([1]);

    // 200 rows on a 4 x 4 grid of small integers: every distance ties with many others.
    const random = new Random(7);
    const x = Float32Array.from({ length: 200 * 2 }, () => Math.floor(random.uniform() * 4));
    const rows = Array.from({ length: 200 }, (_, i) => i);
    const all = await nearestNeighbours(x, 2, rows, rows, 7);
    expect(all.map((f) => Array.from(f))).to.deep.equal(bruteNearest(x, 2, rows, rows, 7));
  });

  it('should find the nearest rows among values near 1e20 and near 1e-25', async () => {
    // Squares of 1e20 overflow float32 and squares of 1e-25 underflow it.
    const large = await nearestNeighbours(
      Float32Array.of(0, 1e20, 3e20, 1e21),
      1,
      [0, 1, 2, 3],
      [0],
      2,
    );
    expect(Array.from(large[0])).to.deep.equal([1, 2]);
    const tiny = Float32Array.of(3e-23, 2e-23, 1e-23, 0, 1e-25);
    const small = await nearestNeighbours(tiny, 1, [0, 1, 2, 3, 4], [3], 1);
    expect(Array.from(small[0])).to.deep.equal([4]);

    const random = new Random(8);
    for (const magnitude of [5e29, 1e-25]) {
      const x = Float32Array.from({ length: 100 * 8 }, () => (random.uniform() - 0.5) * magnitude);
      const rows = Array.from({ length: 100 }, (_, i) => i);
      const found = await nearestNeighbours(x, 8, rows, rows, 5);
      expect(
        found.map((f) => Array.from(f)),
        `values of ${magnitude}`,
      ).to.deep.equal(bruteNearest(x, 8, rows, rows, 5));
    }
  });
});

describe('nearestNeighbours on every path', () => {
  // 300 rows x 8 values on a coarse grid, so that many distances tie exactly, and a class made of
  // every third row; the queries are some of the class and some rows outside it.
  const random = new Random(31);
  const dim = 8;
  const x = Float32Array.from({ length: 300 * dim }, () => Math.floor(random.uniform() * 4));
  const rows = Array.from({ length: 100 }, (_, i) => 3 * i);
  const queries = [...rows.filter((_, i) => i % 4 !== 1), 1, 2, 298];
  const expected = bruteNearest(x, dim, rows, queries, 5);

  it('should match the definition on WebAssembly, one chunk or many', async function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    for (const maxMatrixBytes of [undefined, 2000]) {
      const found = await nearestNeighbours(x, dim, rows, queries, 5, { maxMatrixBytes });
      expect(found.map((f) => Array.from(f))).to.deep.equal(expected);
    }
  });

  it('should match the definition where rows are wide enough to pass over blocks', async () => {
    // 700 rows on a grid of 3 x 3 x 3 points: rows of 700 scores hold 43 blocks of 16, and
    // hundreds of rows tie at each distance.
    const wide = new Random(32);
    const values = Float32Array.from({ length: 700 * 3 }, () => Math.floor(wide.uniform() * 3));
    const all = Array.from({ length: 700 }, (_, i) => i);
    const some = all.filter((i) => i % 3 === 0);
    const found = await nearestNeighbours(values, 3, all, some, 5);
    expect(found.map((f) => Array.from(f))).to.deep.equal(bruteNearest(values, 3, all, some, 5));
  });

  it('should match the definition with a worker thread taking chunks', async () => {
    const before = tf.memory().numTensors;
    const found = await nearestNeighbours(x, dim, rows, queries, 5, {
      maxMatrixBytes: 2000,
      threads: 2,
    });
    expect(found.map((f) => Array.from(f))).to.deep.equal(expected);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('should let the process end once a search with a worker thread is done', async function () {
    // The worker waits 10 s for more work when idle, but must not keep the process alive; nor
    // may the process end while the worker still has chunks to give back.
    const script = [
      "const { initBackend } = require('./src/train/backend');",
      "const { nearestNeighbours } = require('./src/augment/nearest');",
      'initBackend().then(async () => {',
      '  const x = Float32Array.from({ length: 50 * 16 }, (_, i) => Math.sin(i));',
      '  const rows = Array.from({ length: 50 }, (_, i) => i);',
      '  const found = await nearestNeighbours(x, 16, rows, [0], 3, { threads: 2, maxMatrixBytes: 64 });',
      "  process.stdout.write(Array.from(found[0]).join(','));",
      '});',
    ].join('\n');
    const started = Date.now();
    const run = spawnSync(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-e', script],
      { cwd: join(__dirname, '..'), encoding: 'utf8' },
    );
    const seconds = (Date.now() - started) / 1000;
    expect(run.status, run.stderr).to.equal(0);
    const x = Float32Array.from({ length: 50 * 16 }, (_, i) => Math.sin(i));
    const rows = Array.from({ length: 50 }, (_, i) => i);
    expect(run.stdout).to.equal(bruteNearest(x, 16, rows, [0], 3)[0].join(','));
    expect(seconds, 'ended well before the idle worker would have').to.be.below(8);
  });

  it('should match the definition on the JavaScript loops of the cpu backend, alone or not', async () => {
    const previous = tf.getBackend();
    await tf.setBackend('cpu');
    try {
      for (const threads of [1, 2] as const) {
        const found = await nearestNeighbours(x, dim, rows, queries, 5, {
          maxMatrixBytes: 2000,
          threads,
        });
        expect(
          found.map((f) => Array.from(f)),
          `${threads} threads`,
        ).to.deep.equal(expected);
      }
    } finally {
      await tf.setBackend(previous);
    }
  });
});

/** A Random whose Beta draws are always `lambda`, so that blended values can be predicted. */
class FixedLambda extends Random {
  constructor(
    seed: number,
    private readonly lambda: number,
  ) {
    super(seed);
  }

  override beta(): () => number {
    return () => this.lambda;
  }
}

/** `positives` one-hot training rows over 3 classes with x = 10 * row, then 3 all-zero rows. */
function positives(count: number): DataSet {
  const rows: RowSpec[] = [];
  for (let i = 0; i < count; i++) rows.push({ x: [10 * i, 1], y: oneHot(i % 3, 3) });
  for (let i = 0; i < 3; i++) rows.push({ x: [-5 - i, 1], y: [0, 0, 0] });
  rows.push({ x: [777, 1], y: [1, 0, 0], part: Part.validation });
  return build(['A', 'B', 'C'], rows);
}

function changedRows(a: DataSet, b: DataSet): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.rows; r++) {
    const same =
      rowX(a, r).every((v, d) => v === rowX(b, r)[d]) &&
      rowY(a, r).every((v, c) => v === rowY(b, r)[c]);
    if (!same) out.push(r);
  }
  return out;
}

describe('copies that let the event loop turn', () => {
  it('should copy 36 MB exactly, handing the event loop back between 16 MB slices', async () => {
    const values = Float32Array.from({ length: 9 * 1024 * 1024 }, (_, i) => i % 1000);
    const turns = countTurns();
    const copy = await copyYielding(values);
    // 9 Mi values = 36 MiB: slices of 4 Mi values end at 4 Mi, 8 Mi and 9 Mi, with a turn after
    // each of the first two.
    expect(turns.stop()).to.be.at.least(2);
    expect(copy).not.to.equal(values);
    expect(copy.length).to.equal(values.length);
    for (const i of [0, 1, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, values.length - 1]) {
      expect(copy[i]).to.equal(i % 1000);
    }
  });

  it('should mix as mixup does when it copies a slice at a time', async () => {
    const data = positives(40);
    const plain = mixup(data, { random: new Random(8) });
    const yielding = await mixupYielding(data, { random: new Random(8) });
    expect(Array.from(yielding.x)).to.deep.equal(Array.from(plain.x));
    expect(Array.from(yielding.y)).to.deep.equal(Array.from(plain.y));
  });

  it('should blend as mixup does when its blends span several slices', async () => {
    // 12,000 labelled rows of 1024: 3000 blends, handed out 2048 rows (2 Mi values) a slice.
    const [rows, dim] = [12000, 1024];
    const random = new Random(21);
    const data = createDataSet({
      x: Float32Array.from({ length: rows * dim }, () => random.uniform()),
      y: Float32Array.from({ length: rows * 2 }, (_, i) => ((i >> 1) % 2 === i % 2 ? 1 : 0)),
      dim,
      labels: ['A', 'B'],
    });
    const plain = mixup(data, { random: new Random(9) });
    const yielding = await mixupYielding(data, { random: new Random(9) });
    // A blend with lambda within float32 rounding of 1 leaves its row as it was.
    let changed = 0;
    for (let r = 0; r < rows; r++) {
      for (let d = r * dim; d < (r + 1) * dim; d++) {
        if (yielding.x[d] !== data.x[d]) {
          changed++;
          break;
        }
      }
    }
    expect(changed, 'rows blended in both slices').to.be.within(2049, 3000);
    expect(Buffer.from(yielding.x.buffer).equals(Buffer.from(plain.x.buffer))).to.equal(true);
    expect(Buffer.from(yielding.y.buffer).equals(Buffer.from(plain.y.buffer))).to.equal(true);
  });

  it('should let the event loop turn while upsampling appends thousands of wide rows', async () => {
    // A: 3000 rows, B: 100 rows of 1024 values; ratio 1 makes 2900 copies of B rows. Blending
    // hands the loop back every 2 Mi values, that is every 2048 rows of 1024.
    const dim = 1024;
    const rows: RowSpec[] = [];
    for (let i = 0; i < 3000; i++) rows.push({ x: new Array<number>(dim).fill(1), y: [1, 0] });
    for (let i = 0; i < 100; i++) rows.push({ x: new Array<number>(dim).fill(500 + i), y: [0, 1] });
    const data = build(['A', 'B'], rows);
    const turns = countTurns();
    const out = await upsample(data, { ratio: 1, mode: 'repeat', random: new Random(2) });
    expect(turns.stop()).to.be.at.least(1);
    expect(out.rows).to.equal(6000);
    for (const r of [3100, 4500, 5999]) {
      const v = out.x[r * dim];
      expect(v).to.be.within(500, 599);
      expect(Array.from(out.x.subarray(r * dim, (r + 1) * dim)).every((u) => u === v)).to.equal(
        true,
      );
      expect(rowY(out, r)).to.deep.equal([0, 1]);
    }
  });
});

describe('mixup', () => {
  it('should mix nothing with 3 positive rows (case 14)', () => {
    // trunc(0.25 * 3) = 0.
    const data = positives(3);
    const out = mixup(data, { random: new Random(1) });
    expect(out.rows).to.equal(data.rows);
    expect(Array.from(out.x)).to.deep.equal(Array.from(data.x));
    expect(Array.from(out.y)).to.deep.equal(Array.from(data.y));
  });

  it('should replace exactly 2 of 8 positive rows by blends of unmixed rows (case 14)', () => {
    const data = positives(8);
    const before = snapshot(data);
    for (let seed = 0; seed < 50; seed++) {
      const out = mixup(data, { random: new FixedLambda(seed, 0.3) });
      // trunc(0.25 * 8) = 2 rows, each 0.3 * self + 0.7 * other with other an original positive.
      const changed = changedRows(data, out);
      expect(out.rows).to.equal(data.rows);
      expect(changed).to.have.length(2);
      for (const r of changed) {
        expect(r).to.be.below(8);
        const other = (rowX(out, r)[0] - 0.3 * 10 * r) / 0.7 / 10;
        expect(Math.abs(other - Math.round(other))).to.be.below(1e-4);
        const o = Math.round(other);
        expect(o).to.be.within(0, 7).and.not.equal(r);
        rowY(out, r).forEach((v, c) => {
          expect(v).to.be.closeTo(0.3 * rowY(data, r)[c] + 0.7 * rowY(data, o)[c], 1e-6);
          expect(v).to.be.within(0, 1);
        });
      }
    }
    expect(snapshot(data)).to.deep.equal(before);
  });

  it('should replace at most 2 rows with real Beta draws, labels staying in [0, 1]', () => {
    const data = positives(8);
    let exactlyTwo = 0;
    for (let seed = 0; seed < 100; seed++) {
      const out = mixup(data, { random: new Random(seed) });
      const changed = changedRows(data, out);
      // A lambda within float32 rounding of 1 leaves a row as it was, so "at most" 2.
      expect(changed.length).to.be.at.most(2);
      if (changed.length === 2) exactlyTwo++;
      for (const r of changed) expect(r).to.be.below(8);
      for (const v of out.y) expect(v).to.be.within(0, 1);
    }
    expect(exactlyTwo).to.be.above(80);
  });

  it('should repeat itself for a seed and differ for another', () => {
    const data = positives(40);
    const a = mixup(data, { random: new Random(5) });
    const b = mixup(data, { random: new Random(5) });
    const c = mixup(data, { random: new Random(6) });
    expect(Array.from(b.x)).to.deep.equal(Array.from(a.x));
    expect(Array.from(c.x)).not.to.deep.equal(Array.from(a.x));
  });

  it('should refuse binary data', () => {
    const data = build(
      ['X'],
      [
        { x: [0], y: [1] },
        { x: [1], y: [0] },
      ],
    );
    expect(() => mixup(data, { random: new Random(1) })).to.throw(
      /mixup: not available for binary/,
    );
  });
});

describe('smoothLabels', () => {
  const row = [1, 0, 0.5, -1];

  function fourClasses(rows: number): DataSet {
    const specs: RowSpec[] = Array.from({ length: rows }, (_, i) => ({ x: [i], y: row }));
    specs.push({ x: [-1], y: row, part: Part.validation });
    return build(['A', 'B', 'C', 'D'], specs);
  }

  it('should share alpha among the other classes, whatever the number of rows (case 11)', () => {
    // K = 4, alpha 0.1: 1 -> 0.9; 0 -> 0.1 / 3 = 0.033333;
    // 0.5 -> 0.5 * 0.9 + 0.5 * 0.1 / 3 = 0.45 + 0.016667 = 0.466667; -1 stays.
    const expected = [0.9, 0.033333, 0.466667, -1];
    for (const rows of [1, 1000]) {
      const data = fourClasses(rows);
      const before = snapshot(data);
      const out = smoothLabels(data, { alpha: 0.1 });
      for (let r = 0; r < rows; r++) {
        rowY(out, r).forEach((v, c) => expect(v).to.be.closeTo(expected[c], 1e-6));
      }
      expect(rowY(out, rows)).to.deep.equal(row);
      expect(snapshot(data)).to.deep.equal(before);
    }
  });

  it('should default to alpha 0.1 and share over K - 1 = 2 with 3 classes', () => {
    const data = build(['A', 'B', 'C'], [{ x: [0], y: [0, 1, 0] }]);
    // 0 -> 0.1 / 2 = 0.05; 1 -> 0.9.
    const [a, b, c] = rowY(smoothLabels(data), 0);
    expect(a).to.be.closeTo(0.05, 1e-7);
    expect(b).to.be.closeTo(0.9, 1e-7);
    expect(c).to.be.closeTo(0.05, 1e-7);
  });

  it('should refuse binary data and an alpha outside [0, 1)', () => {
    const binary = build(['X'], [{ x: [0], y: [1] }]);
    expect(() => smoothLabels(binary)).to.throw(/label smoothing: not available for binary/);
    const data = fourClasses(1);
    expect(() => smoothLabels(data, { alpha: 1 })).to.throw(/label smoothing alpha/);
    expect(() => smoothLabels(data, { alpha: -0.1 })).to.throw(/label smoothing alpha/);
    expect(rowY(smoothLabels(data, { alpha: 0 }), 0)).to.deep.equal(row);
  });
});

describe('upsample, mixup and smoothing together', () => {
  it('should leave validation and test rows untouched (case 18)', async () => {
    // Split at 0.2 of classes of 10, 5 and 1 rows: train / validation 8/2, 4/1, 1/0.
    const rows: RowSpec[] = [];
    [10, 5, 1].forEach((n, c) => {
      const train = Math.max(1, Math.trunc(n * 0.8));
      for (let i = 0; i < n; i++) {
        rows.push({
          x: [c * 10 + i * 0.3, c - i * 0.1],
          y: oneHot(c, 3),
          part: i < train ? Part.train : Part.validation,
        });
      }
    });
    rows.push({ x: [3, 3], y: [0, 0, 0], part: Part.test });
    rows.push({ x: [4, 4], y: [0, 1, 0], part: Part.test });
    const data = build(['A', 'B', 'C'], rows);
    const root = new Random(18);

    const upsampled = await upsample(data, {
      ratio: 1,
      mode: 'smote',
      random: root.derive('upsample'),
    });
    const mixed = mixup(upsampled, { random: root.derive('mixup') });
    const out = smoothLabels(mixed, { alpha: 0.1 });

    // target = trunc(8 * 1) = 8: B gains 4 rows, C (one row) 7 copies.
    expect(out.rows).to.equal(data.rows + 11);
    for (let r = 0; r < data.rows; r++) {
      if (data.parts[r] === Part.train) continue;
      expect(out.parts[r]).to.equal(data.parts[r]);
      expect(new Uint8Array(out.x.buffer, r * 8, 8)).to.deep.equal(
        new Uint8Array(data.x.buffer, r * 8, 8),
      );
      expect(rowY(out, r)).to.deep.equal(rowY(data, r));
      expect(out.synthetic[r]).to.equal(0);
    }
    const validation = [...out.parts.keys()].filter((r) => out.parts[r] === Part.validation);
    expect(validation).to.have.length(2 + 1 + 0);
    for (const r of validation) {
      for (const v of rowY(out, r)) expect(v).to.be.oneOf([0, 1]);
    }
  });
});
