import { expect } from 'chai';
import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import * as tf from '@tensorflow/tfjs';
import { Random } from '../src/random';
import { AdamW } from './adamw-reference';
import { FusedAdamW, FusedImplementation } from '../src/train/fused-adamw';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { SIMD_KERNELS_WASM, addressOf, simdKernels } from '../src/train/simd-kernels';
import {
  WASM_MATMUL_ENV,
  installWasmMatMul,
  uninstallWasmMatMul,
  wasmMatMulKernels,
} from '../src/train/wasm-matmul';

/** `[...shape]` float32 values in [-1, 1) from a seeded stream. */
function values(random: Random, shape: number[]): Float32Array {
  return Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => {
    return random.uniform() * 2 - 1;
  });
}

/**
 * op(A) op(B) from the definition, in float64: A `[batchA, ra, ca]`, B `[batchB, rb, cb]`, a
 * batch of 1 broadcast against the other.
 */
function reference(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): Float64Array {
  const [ra, ca] = aShape.slice(-2);
  const [rb, cb] = bShape.slice(-2);
  const batchA = a.length / (ra * ca);
  const batchB = b.length / (rb * cb);
  const batch = Math.max(batchA, batchB);
  const [m, k] = transposeA ? [ca, ra] : [ra, ca];
  const n = transposeB ? rb : cb;
  const at = (i: number, p: number, t: number) =>
    a[(batchA === 1 ? 0 : t) * ra * ca + (transposeA ? p * ca + i : i * ca + p)];
  const bt = (p: number, j: number, t: number) =>
    b[(batchB === 1 ? 0 : t) * rb * cb + (transposeB ? j * cb + p : p * cb + j)];
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += at(i, p, t) * bt(p, j, t);
        out[t * m * n + i * n + j] = sum;
      }
    }
  }
  return out;
}

/** The largest |x - y| relative to max(1, |y|) over two arrays of equal length. */
function worstError(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < y.length; i++) {
    worst = Math.max(worst, Math.abs(x[i] - y[i]) / Math.max(1, Math.abs(y[i])));
  }
  return worst;
}

/** `tf.matMul` with the stock kernel in place for the call. */
function stockMatMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean) {
  uninstallWasmMatMul();
  try {
    return tf.matMul(a, b, transposeA, transposeB);
  } finally {
    installWasmMatMul();
  }
}

interface Shapes {
  a: number[];
  b: number[];
}

/** Operand shapes for op(A) `[m, k]` times op(B) `[k, n]`, with a batch in front when given. */
function shapes(
  m: number,
  k: number,
  n: number,
  transposeA: boolean,
  transposeB: boolean,
  batchA: number[] = [],
  batchB: number[] = [],
): Shapes {
  return {
    a: [...batchA, ...(transposeA ? [k, m] : [m, k])],
    b: [...batchB, ...(transposeB ? [n, k] : [k, n])],
  };
}

const COMBINATIONS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

describe('wasm BatchMatMul kernel', function () {
  before(function () {
    process.stdout.write(`      TF.js backend: ${tf.getBackend()}\n`);
    if (tf.getBackend() !== 'wasm') {
      process.stdout.write('      skipped: the replacement kernel is for the wasm backend\n');
      this.skip();
    }
    if (process.env[WASM_MATMUL_ENV] === 'stock') {
      process.stdout.write(`      ${WASM_MATMUL_ENV}=stock: installing the kernel for the test\n`);
    }
    installWasmMatMul();
  });

  after(() => {
    if (process.env[WASM_MATMUL_ENV] === 'stock') uninstallWasmMatMul();
  });

  it('should be the kernel registered for BatchMatMul on wasm', () => {
    const { stock, installed } = wasmMatMulKernels();
    expect(installed).to.be.a('function');
    expect(stock).to.be.a('function');
    expect(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc).to.equal(installed);
    expect(installed).to.not.equal(stock);
  });

  const cases: [string, number, number, number, number[]?, number[]?][] = [
    ['1 x 1 x 1', 1, 1, 1],
    ['odd sizes 5 x 7 x 3', 5, 7, 3],
    ['odd sizes 17 x 33 x 6', 17, 33, 6],
    ['a training step, 32 x 1024 x 512', 32, 1024, 512],
    ['a wide right operand, 9 x 64 x 300', 9, 64, 300],
    ['a tall left operand, 300 x 64 x 9', 300, 64, 9],
    ['a batch of 3, 4 x 5 x 6', 4, 5, 6, [3], [3]],
    ['a batch of 3 against a batch of 1, 4 x 5 x 6', 4, 5, 6, [3], [1]],
    ['a batch of 1 against a batch of 3, 4 x 5 x 6', 4, 5, 6, [1], [3]],
    ['a batch of 2 x 2, 7 x 9 x 5', 7, 9, 5, [2, 2], [2, 2]],
  ];
  for (const [name, m, k, n, batchA, batchB] of cases) {
    for (const [transposeA, transposeB] of COMBINATIONS) {
      it(`should agree with the stock kernel and the definition: ${name}, transposeA ${transposeA}, transposeB ${transposeB}`, () => {
        const random = new Random(`kernel/${name}/${transposeA}/${transposeB}`);
        const s = shapes(m, k, n, transposeA, transposeB, batchA, batchB);
        const aValues = values(random, s.a);
        const bValues = values(random, s.b);
        const want = reference(aValues, s.a, bValues, s.b, transposeA, transposeB);
        const a = tf.tensor(aValues, s.a);
        const b = tf.tensor(bValues, s.b);
        const before = tf.memory().numTensors;
        const dataBefore = tf.backend().numDataIds();

        const ours = tf.matMul(a, b, transposeA, transposeB);
        const theirs = stockMatMul(a, b, transposeA, transposeB);

        expect(ours.shape).to.deep.equal(theirs.shape);
        // float32 rounding of a sum of k products grows at most in proportion to k
        const tolerance = 2e-7 * k;
        expect(worstError(ours.dataSync(), theirs.dataSync())).to.be.below(tolerance);
        expect(worstError(ours.dataSync(), want)).to.be.below(tolerance);
        ours.dispose();
        theirs.dispose();
        expect(tf.memory().numTensors).to.equal(before);
        expect(tf.backend().numDataIds()).to.equal(dataBefore);
        a.dispose();
        b.dispose();
      });
    }
  }

  it('should give the same product when a right operand is reused (then packed once)', () => {
    const random = new Random('kernel/reuse');
    const weights = tf.tensor(values(random, [256, 64]), [256, 64]);
    const before = tf.memory().numTensors;
    const dataBefore = tf.backend().numDataIds();
    for (let call = 0; call < 3; call++) {
      const xValues = values(random, [8, 256]);
      const x = tf.tensor(xValues, [8, 256]);
      const out = tf.matMul(x, weights);
      const want = reference(
        xValues,
        [8, 256],
        weights.dataSync() as Float32Array,
        [256, 64],
        false,
        false,
      );
      expect(worstError(out.dataSync(), want), `call ${call + 1}`).to.be.below(2e-5);
      x.dispose();
      out.dispose();
    }
    expect(tf.memory().numTensors).to.equal(before);
    expect(tf.backend().numDataIds()).to.equal(dataBefore);
    weights.dispose();
  });

  it('should leave the tensor count at its baseline after gradients through two Dense layers', () => {
    const random = new Random('kernel/grads');
    const before = tf.memory().numTensors;
    const x = tf.tensor(values(random, [32, 40]), [32, 40]);
    const w1 = tf.tidy(() => tf.variable(tf.tensor(values(random, [40, 24]), [40, 24])));
    const w2 = tf.tidy(() => tf.variable(tf.tensor(values(random, [24, 5]), [24, 5])));
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.matMul(tf.relu(tf.matMul(x, w1)), w2)) as tf.Scalar,
      [w1, w2],
    );
    const ours = [grads[w1.name].dataSync(), grads[w2.name].dataSync()];
    const theirs = tf.tidy(() => {
      uninstallWasmMatMul();
      try {
        const g = tf.variableGrads(
          () => tf.sum(tf.matMul(tf.relu(tf.matMul(x, w1)), w2)) as tf.Scalar,
          [w1, w2],
        ).grads;
        return [g[w1.name].dataSync(), g[w2.name].dataSync()];
      } finally {
        installWasmMatMul();
      }
    });
    expect(worstError(ours[0], theirs[0])).to.be.below(2e-5);
    expect(worstError(ours[1], theirs[1])).to.be.below(2e-5);
    tf.dispose([value, ...Object.values(grads), x, w1, w2]);
    expect(tf.memory().numTensors).to.equal(before);
  });
});

describe('FusedAdamW', () => {
  before(() => process.stdout.write(`      TF.js backend: ${tf.getBackend()}\n`));

  /** Runs `test` on the cpu backend (the JavaScript loop), then returns to the one in use. */
  async function onCpu(test: () => void): Promise<void> {
    const previous = tf.getBackend();
    await tf.setBackend('cpu');
    try {
      test();
    } finally {
      await tf.setBackend(previous);
    }
  }

  it('should follow AdamW with the L2 gradient 2 l2 w added, and return l2 sum(w^2)', () => {
    followsAdamW();
  });

  it('should follow AdamW on the cpu backend too (the JavaScript loop)', async () => {
    await onCpu(() => followsAdamW());
  });

  it('should follow AdamW with tensor operations (the path for native backends)', () => {
    followsAdamW('tensors');
  });

  function followsAdamW(implementation?: FusedImplementation): void {
    const random = new Random('kernel/adamw');
    const before = tf.memory().numTensors;
    const shapes = [[37, 11], [11], [11, 3]];
    const start = shapes.map((s) => values(random, s));
    const variable = (v: Float32Array, i: number) =>
      tf.tidy(() => tf.variable(tf.tensor(v, shapes[i])));
    const ours = start.map(variable);
    const theirs = start.map(variable);
    const l2 = 0.01;
    const fused = new FusedAdamW(ours, {
      weightDecay: 0.004,
      l2,
      penalised: [ours[0], ours[2]],
      implementation,
    });
    const reference = new AdamW(theirs, { weightDecay: 0.004 });

    for (let step = 1; step <= 5; step++) {
      const grads = shapes.map((s) => tf.tensor(values(random, s), s));
      const weights = theirs.map((w) => Array.from(w.dataSync()));
      const penalty = fused.apply(grads, 0.01 * step);
      const squares = [0, 2].reduce((sum, i) => sum + weights[i].reduce((s, w) => s + w * w, 0), 0);
      expect(penalty).to.be.closeTo(l2 * squares, 1e-6 * Math.max(1, l2 * squares));

      const withL2 = tf.tidy(() =>
        grads.map((g, i) => (i === 1 ? g.clone() : tf.add(g, tf.mul(2 * l2, theirs[i])))),
      );
      reference.apply(withL2, 0.01 * step);
      tf.dispose([...grads, ...withL2]);
      ours.forEach((w, i) => {
        expect(worstError(w.dataSync(), theirs[i].dataSync()), `step ${step}`).to.be.below(1e-5);
      });
    }
    fused.dispose();
    reference.dispose();
    tf.dispose([...ours, ...theirs]);
    expect(tf.memory().numTensors).to.equal(before);
  }

  it('should keep the old weights in a tensor that shares them (saved best weights)', () => {
    const w = tf.tidy(() => tf.variable(tf.tensor([1, 2, 3, 4, 5])));
    const saved = tf.clone(w);
    const fused = new FusedAdamW([w]);
    const g = tf.tensor([1, 1, 1, 1, 1]);
    fused.apply([g], 0.1);
    expect(Array.from(saved.dataSync())).to.deep.equal([1, 2, 3, 4, 5]);
    expect(w.dataSync()[0]).to.be.below(1);
    fused.dispose();
    tf.dispose([w, saved, g]);
  });
});

describe('SIMD kernels', () => {
  it('should ship the bytes that simd-kernels.wat assembles to', function () {
    const probe = spawnSync('wat2wasm', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      if (process.env.CI) throw new Error("wat2wasm is missing; .ci/run installs Debian's wabt");
      process.stdout.write('      skipped: wat2wasm (Debian package wabt) is not installed\n');
      this.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), 'simd-kernels-'));
    try {
      const out = join(dir, 'simd-kernels.wasm');
      const source = join(__dirname, '..', 'src', 'train', 'simd-kernels.wat');
      const run = spawnSync('wat2wasm', [source, '-o', out], { encoding: 'utf8' });
      expect(run.status, run.stderr).to.equal(0);
      expect(readFileSync(out).toString('base64')).to.equal(SIMD_KERNELS_WASM);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should rank candidates by float64 distance, equal ones lowest row first, never the query', function () {
    if (tf.getBackend() !== 'wasm') this.skip();
    const backend = tf.backend() as BackendWasm;
    const kernels = simdKernels(backend)!;
    // Matrix positions 0..4 (rows 14, 13, 11, 12, 10), then one query not among them.
    const points = [
      [0, 0],
      [1, 0],
      [0, -1],
      [3, 4],
      [0, 0],
      [3, 3],
    ];
    const fetch = 5;
    const k = 3;
    const tensors = [
      tf.tensor1d(points.flat()),
      tf.tensor1d([14, 13, 11, 12, 10], 'int32'),
      // Query 0 (position 0, row 14) was offered every position, itself included; query 1
      // (3, 3), not among the rows, positions 0 and 3.
      tf.tensor1d([3, 1, 2, 4, 0, 0, 3, 0, 0, 0], 'int32'),
      tf.tensor1d([5, 2], 'int32'),
      tf.zeros([2 * k], 'int32'),
      tf.zeros([2], 'int32'),
      tf.zeros([2 * k]),
    ];
    try {
      const [values, rowOf, positions, kept, out, counts, scratch] = tensors.map((t) =>
        addressOf(backend, t.dataId),
      );
      kernels.rerank(values, 2, rowOf, 5, 1, positions, kept, fetch, k, 0, 2, out, counts, scratch);
      // Query 0: row 10 at 0; rows 11 and 13 at 1 (lower row first); row 12 at 25 drops out.
      // Query 1: row 12 at 0^2 + 1^2 = 1, row 14 at 3^2 + 3^2 = 18.
      expect(Array.from(tensors[5].dataSync())).to.deep.equal([3, 2]);
      expect(Array.from(tensors[4].dataSync()).slice(0, 3)).to.deep.equal([10, 11, 13]);
      expect(Array.from(tensors[4].dataSync()).slice(3, 5)).to.deep.equal([12, 14]);
    } finally {
      tf.dispose(tensors);
    }
  });
});
