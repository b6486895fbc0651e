import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { SimdKernels, addressOf, simdKernels } from './simd-kernels';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay per step, scaled by the learning rate; default 0.004. */
  weightDecay?: number;
}

export interface FusedAdamWOptions extends AdamWOptions {
  /** Factor of the L2 penalty l2 * sum(w^2) on the `penalised` variables; default 0. */
  l2?: number;
  /** Variables (of those optimised) that carry the L2 penalty, e.g. the Dense kernels. */
  penalised?: readonly tf.Variable[];
  /**
   * How the step runs: `simd` (WebAssembly SIMD in the wasm backend's memory), `loop` (a
   * JavaScript loop over the values) or `tensors` (TF.js operations, for native backends whose
   * values live outside JavaScript). Default: `simd` on wasm where it can be had, `loop` on the
   * other JavaScript backends, `tensors` elsewhere.
   */
  implementation?: FusedImplementation;
}

export type FusedImplementation = 'simd' | 'loop' | 'tensors';

/**
 * AdamW (Adam with decoupled weight decay, Loshchilov and Hutter; TF.js ships Adam only, and its
 * learning rate cannot follow a schedule), with the gradient of an L2 penalty added, done in one
 * pass per variable instead of about twenty tensor operations that each read and write the whole
 * weight matrix. On the WebAssembly and JavaScript backends those operations took longer than the
 * forward and backward passes together. On WebAssembly the pass runs as a SIMD loop in the
 * backend's memory (simd-kernels.wat), on the JavaScript backend as a loop over the tensors'
 * values; a native backend (tfjs-node) keeps the tensor operations, which it runs fast.
 *
 * Per weight w with gradient g (2 l2 w added for penalised variables), step t, rate lr:
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * w = w (1 - lr wd) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * The moments belong to this object; each update assigns a new tensor to every variable, so
 * tensors that share the old weights (saved best weights) keep them.
 */
export class FusedAdamW {
  private readonly moments: Moments[];
  private readonly l2x2: number[];
  private readonly simd: SimdKernels | undefined;
  private readonly implementation: FusedImplementation;
  private step = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly weightDecay: number;

  constructor(
    private readonly variables: readonly tf.Variable[],
    options: FusedAdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-7;
    this.weightDecay = options.weightDecay ?? 0.004;
    const l2 = options.l2 ?? 0;
    const penalised = new Set(options.penalised ?? []);
    this.l2x2 = variables.map((w) => (penalised.has(w) ? 2 * l2 : 0));
    const backend = tf.getBackend();
    this.simd = backend === 'wasm' ? simdKernels(wasmBackend()) : undefined;
    this.implementation =
      options.implementation ??
      (this.simd !== undefined
        ? 'simd'
        : backend === 'wasm' || backend === 'cpu'
          ? 'loop'
          : 'tensors');
    if (this.implementation === 'simd' && this.simd === undefined) {
      throw new Error(`FusedAdamW: the simd implementation needs the wasm backend, not ${backend}`);
    }
    this.moments = variables.map((w) => {
      if (this.implementation === 'loop') {
        return { m: new Float32Array(w.size), v: new Float32Array(w.size) };
      }
      return tf.tidy(() => ({
        m: tf.variable(tf.zeros(w.shape)),
        v: tf.variable(tf.zeros(w.shape)),
      }));
    });
  }

  /**
   * One update; `grads[i]` belongs to `variables[i]` and holds the gradient of the loss without
   * the L2 penalty. Returns the penalty l2 * sum(w^2) of the weights before the update, which
   * belongs to the loss the gradients were taken of.
   */
  apply(grads: readonly tf.Tensor[], learningRate: number): number {
    this.step++;
    const step: StepConstants = {
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      stepSize: learningRate / (1 - this.beta1 ** this.step),
      rootInv: 1 / Math.sqrt(1 - this.beta2 ** this.step),
      decay: 1 - learningRate * this.weightDecay,
      l2x2: 0,
    };
    let penalty = 0;
    this.variables.forEach((w, i) => {
      const c = { ...step, l2x2: this.l2x2[i] };
      const moments = this.moments[i];
      const { next, squares } =
        this.implementation === 'loop'
          ? updateValues(w, grads[i], moments as ArrayMoments, c)
          : this.implementation === 'simd'
            ? updateInMemory(this.simd!, w, grads[i], moments as TensorMoments, c)
            : updateTensors(w, grads[i], moments as TensorMoments, c);
      penalty += (c.l2x2 / 2) * squares;
      w.assign(next);
      next.dispose();
    });
    return penalty;
  }

  dispose(): void {
    for (const { m, v } of this.moments) {
      if (!(m instanceof Float32Array)) m.dispose();
      if (!(v instanceof Float32Array)) v.dispose();
    }
  }
}

interface ArrayMoments {
  m: Float32Array;
  v: Float32Array;
}

interface TensorMoments {
  m: tf.Variable;
  v: tf.Variable;
}

type Moments = ArrayMoments | TensorMoments;

interface StepConstants {
  beta1: number;
  beta2: number;
  epsilon: number;
  stepSize: number;
  /** 1 / sqrt(1 - beta2^t) */
  rootInv: number;
  decay: number;
  l2x2: number;
}

function wasmBackend(): BackendWasm {
  return tf.backend() as BackendWasm;
}

/** The SIMD step in the wasm backend's memory: moments in place, the weights into a new tensor. */
function updateInMemory(
  simd: SimdKernels,
  w: tf.Tensor,
  g: tf.Tensor,
  moments: TensorMoments,
  c: StepConstants,
): { next: tf.Tensor; squares: number } {
  const backend = wasmBackend();
  const out = backend.makeOutput(w.shape, 'float32');
  const next = tf.engine().makeTensorFromTensorInfo(out, backend);
  const squares = simd.adamw(
    addressOf(backend, w.dataId),
    addressOf(backend, g.dataId),
    addressOf(backend, moments.m.dataId),
    addressOf(backend, moments.v.dataId),
    addressOf(backend, out.dataId),
    w.size,
    c.beta1,
    c.beta2,
    c.stepSize,
    c.rootInv,
    c.epsilon,
    c.decay,
    c.l2x2,
  );
  return { next, squares };
}

/** The step as a JavaScript loop over the values: moments in place, the weights into a copy. */
function updateValues(
  w: tf.Tensor,
  g: tf.Tensor,
  moments: ArrayMoments,
  c: StepConstants,
): { next: tf.Tensor; squares: number } {
  const { beta1, beta2, epsilon, stepSize, rootInv, decay, l2x2 } = c;
  const { m, v } = moments;
  const weights = w.dataSync() as Float32Array;
  const gradient = g.dataSync() as Float32Array;
  const out = new Float32Array(w.size);
  let squares = 0;
  for (let j = 0; j < out.length; j++) {
    const wj = weights[j];
    const gj = gradient[j] + l2x2 * wj;
    const mj = beta1 * m[j] + (1 - beta1) * gj;
    const vj = beta2 * v[j] + (1 - beta2) * gj * gj;
    m[j] = mj;
    v[j] = vj;
    out[j] = wj * decay - (stepSize * mj) / (Math.sqrt(vj) * rootInv + epsilon);
    squares += wj * wj;
  }
  return { next: tf.tensor(out, w.shape, 'float32'), squares };
}

/** The step as TF.js operations: moments assigned, the weights into a new tensor. */
function updateTensors(
  w: tf.Tensor,
  g: tf.Tensor,
  moments: TensorMoments,
  c: StepConstants,
): { next: tf.Tensor; squares: number } {
  const { beta1, beta2, epsilon, stepSize, rootInv, decay, l2x2 } = c;
  const { next, squares } = tf.tidy(() => {
    const grad = l2x2 > 0 ? tf.add(g, tf.mul(w, l2x2)) : g;
    const m = tf.add(tf.mul(moments.m, beta1), tf.mul(grad, 1 - beta1));
    const v = tf.add(tf.mul(moments.v, beta2), tf.mul(tf.square(grad), 1 - beta2));
    moments.m.assign(m);
    moments.v.assign(v);
    const step = tf.div(tf.mul(m, stepSize), tf.add(tf.mul(tf.sqrt(v), rootInv), epsilon));
    return { next: tf.sub(tf.mul(w, decay), step), squares: tf.sum(tf.square(w)) };
  });
  try {
    return { next, squares: squares.dataSync()[0] };
  } finally {
    squares.dispose();
  }
}
