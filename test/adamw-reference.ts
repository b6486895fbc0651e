import * as tf from '@tensorflow/tfjs';
import type { AdamWOptions } from '../src/train/fused-adamw';

/**
 * The reference the fused optimiser is checked against: Adam with decoupled weight decay
 * (Loshchilov and Hutter) written as plain TF.js operations, one per step of the formula:
 * w -= lr * wd * w, then the Adam step with bias-corrected moments. Owns its moment tensors:
 * call {@link dispose}.
 */
export class AdamW {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private step = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;
  private readonly weightDecay: number;

  constructor(
    private readonly variables: readonly tf.Variable[],
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-7;
    this.weightDecay = options.weightDecay ?? 0.004;
    this.m = variables.map((w) => tf.tidy(() => tf.variable(tf.zerosLike(w), false)));
    this.v = variables.map((w) => tf.tidy(() => tf.variable(tf.zerosLike(w), false)));
  }

  /** One update; `grads[i]` belongs to `variables[i]`. */
  apply(grads: readonly tf.Tensor[], learningRate: number): void {
    this.step++;
    const correction1 = 1 - this.beta1 ** this.step;
    const correction2 = 1 - this.beta2 ** this.step;
    const stepSize = learningRate / correction1;
    const decay = 1 - learningRate * this.weightDecay;
    tf.tidy(() => {
      this.variables.forEach((w, i) => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(correction2)), this.epsilon);
        this.m[i].assign(m);
        this.v[i].assign(v);
        w.assign(tf.sub(tf.mul(w, decay), tf.mul(tf.div(m, denom), stepSize)));
      });
    });
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
