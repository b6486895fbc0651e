import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { addressOf, simdKernels } from './simd-kernels';

/**
 * Environment switch for the wasm backend's matrix product: `stock` keeps the backend's own
 * BatchMatMul kernel; unset or anything else installs {@link installWasmMatMul}'s replacement
 * when {@link initBackend} picks the wasm backend.
 */
export const WASM_MATMUL_ENV = 'CUSTOM_CLASSIFIER_WASM_MATMUL';

const KERNEL = 'BatchMatMul';
const BACKEND = 'wasm';

/**
 * Costs per element, relative to each other, of XNNPACK packing the right operand of a product and
 * of copying a matrix transposed, with the SIMD kernel or with the backend's Transpose kernel.
 * Measured on x86-64 with Node 20 for 1024 x 512 floats: packing about 8.6 ns, transposing 0.6 ns
 * (SIMD) or 6 to 12 ns (backend).
 */
const PACK_COST = 8;
const SIMD_COPY_COST = 1;
const STOCK_COPY_COST = 8;

let stock: tf.KernelConfig | undefined;
let installed: tf.KernelConfig | undefined;

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/**
 * Replaces the wasm backend's BatchMatMul kernel by one that only ever hands the stock kernel
 * untransposed operands.
 *
 * The stock kernel runs a product on XNNPACK only when neither operand is transposed and neither
 * has a batch of more than one; otherwise it falls back to a scalar loop about ten times slower.
 * Backpropagation through a Dense layer asks for x^T dy and dy W^T, so without this every
 * training step took the slow loop. XNNPACK also repacks its right operand whenever that is a
 * tensor it has not seen (cached per tensor), which the weights are after every update; where
 * that packing costs more than copying, the product is computed as C = (B^T A^T)^T instead, whose
 * right operand is the smaller one. Results agree with the stock kernel within float32 rounding:
 * the sums run in another order.
 *
 * Call after the wasm backend has been initialised; a second call does nothing. Returns false when
 * the wasm backend is not registered.
 */
export function installWasmMatMul(): boolean {
  if (installed !== undefined) return true;
  const current = tf.getKernel(KERNEL, BACKEND);
  if (current === undefined) return false;

  stock = current;
  installed = {
    kernelName: KERNEL,
    backendName: BACKEND,
    setupFunc: current.setupFunc,
    disposeFunc: current.disposeFunc,
    kernelFunc: transposingMatMul(current.kernelFunc),
  };
  tf.unregisterKernel(KERNEL, BACKEND);
  tf.registerKernel(installed);
  return true;
}

/** Puts the stock kernel back; does nothing when the replacement is not installed. */
export function uninstallWasmMatMul(): void {
  if (stock === undefined) return;
  tf.unregisterKernel(KERNEL, BACKEND);
  tf.registerKernel(stock);
  stock = undefined;
  installed = undefined;
}

/** The kernel functions in play: the backend's own and, once installed, the replacement. */
export function wasmMatMulKernels(): { stock?: tf.KernelFunc; installed?: tf.KernelFunc } {
  return { stock: stock?.kernelFunc, installed: installed?.kernelFunc };
}

function transposingMatMul(stockMatMul: tf.KernelFunc): tf.KernelFunc {
  // Tensors that were offered as an untransposed right operand: a second offer means the tensor
  // is reused (inference weights), so packing it once and keeping it cached pays off.
  const offered = new WeakSet<object>();

  return (args) => {
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    const backend = args.backend as BackendWasm;
    const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stockMatMul(args);

    const [m, k] = outerInner(a.shape, transposeA);
    const [n] = outerInner(b.shape, !transposeB);
    const batched = batchOf(a.shape) > 1 || batchOf(b.shape) > 1;
    const reused = !transposeB && offered.has(b.dataId);
    if (!transposeB) offered.add(b.dataId);
    const copyCost = simdKernels(backend) !== undefined ? SIMD_COPY_COST : STOCK_COPY_COST;
    if (batched || !swapPays(m, k, n, transposeA, transposeB, reused, copyCost)) {
      if (!transposeA && !transposeB) return stockMatMul(args);
      return product(stockMatMul, backend, a, b, transposeA, transposeB);
    }
    const swapped = product(stockMatMul, backend, b, a, !transposeB, !transposeA);
    try {
      return transposed(swapped, backend);
    } finally {
      backend.disposeData(swapped.dataId);
    }
  };
}

/**
 * Whether (B^T A^T)^T costs less than A B besides the product itself. Direct: copy a transposed
 * operand, pack B unless it is cached. Swapped: copy whichever of A, B is not transposed, pack
 * A^T, copy the `[n, m]` result.
 */
function swapPays(
  m: number,
  k: number,
  n: number,
  transposeA: boolean,
  transposeB: boolean,
  reused: boolean,
  copyCost: number,
): boolean {
  const direct =
    copyCost * ((transposeA ? m * k : 0) + (transposeB ? k * n : 0)) +
    (reused ? 0 : PACK_COST * k * n);
  const swapped =
    copyCost * ((transposeA ? 0 : m * k) + (transposeB ? 0 : k * n) + m * n) + PACK_COST * m * k;
  return swapped < direct;
}

/** op(A) op(B) by the stock kernel, with each transposed operand copied first. */
function product(
  stockMatMul: tf.KernelFunc,
  backend: BackendWasm,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): tf.TensorInfo {
  const left = transposeA ? transposed(a, backend) : a;
  const right = transposeB ? transposed(b, backend) : b;
  try {
    return stockMatMul({
      inputs: { a: left, b: right },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as tf.TensorInfo;
  } finally {
    if (left !== a) backend.disposeData(left.dataId);
    if (right !== b) backend.disposeData(right.dataId);
  }
}

/** [rows, cols] of the matrix that `shape` holds, read as transposed when `transpose`. */
function outerInner(shape: readonly number[], transpose: boolean): [number, number] {
  const rows = shape[shape.length - 2];
  const cols = shape[shape.length - 1];
  return transpose ? [cols, rows] : [rows, cols];
}

function batchOf(shape: readonly number[]): number {
  return shape.slice(0, -2).reduce((p, d) => p * d, 1);
}

/**
 * A new float32 tensor holding `x` with its last two axes swapped, `[..., rows, cols]` to
 * `[..., cols, rows]`. The backend's Transpose kernel writes the output in order and so reads the
 * input a column at a time; the SIMD kernel moves 4 x 4 blocks and is several times faster on
 * weight matrices. The backend's kernel is the fallback.
 */
function transposed(x: tf.TensorInfo, backend: BackendWasm): tf.TensorInfo {
  const rank = x.shape.length;
  const [rows, cols] = [x.shape[rank - 2], x.shape[rank - 1]];
  const simd = simdKernels(backend);
  if (simd === undefined) {
    const perm = [...Array(rank).keys()];
    [perm[rank - 2], perm[rank - 1]] = [rank - 1, rank - 2];
    const transpose = tf.getKernel('Transpose', BACKEND)!.kernelFunc;
    return transpose({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo;
  }

  const out = backend.makeOutput([...x.shape.slice(0, -2), cols, rows], 'float32');
  const bytes = rows * cols * 4;
  const src = addressOf(backend, x.dataId);
  const dst = addressOf(backend, out.dataId);
  for (let batch = 0; batch < batchOf(x.shape); batch++) {
    simd.transpose(src + batch * bytes, dst + batch * bytes, rows, cols);
  }
  return out;
}
