import * as tf from '@tensorflow/tfjs';

/** Probabilities are clipped to [EPSILON, 1 - EPSILON] before any log. */
export const EPSILON = 1e-7;

export type LossKind = 'crossentropy' | 'focal';

export interface LossOptions {
  kind: LossKind;
  /** Focal loss focusing exponent, >= 0; default 2. */
  gamma?: number;
  /** Focal loss weight of the positive side, in [0, 1]; default 0.25. */
  alpha?: number;
}

/**
 * Per-entry loss of sigmoid outputs, `[rows, classes]`.
 *
 * Labels may be fractions (mixup, smoothing) or negative: an entry y < 0 marks a negative sample,
 * which counts as an absent label with weight 1 + |y| (so -1 weighs 2). Every value is finite for
 * labels in [-1, 1], any probability and any gamma >= 0.
 *
 * - cross-entropy: -y log(p) - (1 - y) log(1 - p)
 * - focal: alpha_t (1 - p_t)^gamma * cross-entropy, p_t = y p + (1 - y)(1 - p),
 *   alpha_t = y alpha + (1 - y)(1 - alpha)
 */
export function elementLoss(probs: tf.Tensor, labels: tf.Tensor, options: LossOptions): tf.Tensor {
  return tf.tidy(() => {
    const p = tf.clipByValue(probs, EPSILON, 1 - EPSILON);
    const y = tf.relu(labels);
    const weight = tf.add(1, tf.relu(tf.neg(labels)));
    const oneMinusY = tf.sub(1, y);
    const ce = tf.neg(tf.add(tf.mul(y, tf.log(p)), tf.mul(oneMinusY, tf.log(tf.sub(1, p)))));
    if (options.kind === 'crossentropy') return tf.mul(weight, ce);

    const gamma = options.gamma ?? 2;
    const alpha = options.alpha ?? 0.25;
    const pT = tf.add(tf.mul(y, p), tf.mul(oneMinusY, tf.sub(1, p)));
    const alphaT = tf.add(tf.mul(y, alpha), tf.mul(oneMinusY, 1 - alpha));
    const focus = tf.pow(tf.clipByValue(tf.sub(1, pT), EPSILON, 1), gamma);
    return tf.mul(weight, tf.mul(alphaT, tf.mul(focus, ce)));
  });
}

/** The batch loss: per row the sum over classes, then the mean over rows. A scalar. */
export function batchLoss(probs: tf.Tensor, labels: tf.Tensor, options: LossOptions): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sum(elementLoss(probs, labels, options), 1)) as tf.Scalar);
}

/** Sum of the per-row losses, for averaging over a data set seen in chunks. A scalar. */
export function summedLoss(probs: tf.Tensor, labels: tf.Tensor, options: LossOptions): tf.Scalar {
  return tf.tidy(() => tf.sum(elementLoss(probs, labels, options)) as tf.Scalar);
}

/** L2 penalty, factor * sum(w^2), over the given kernels. A scalar. */
export function l2Penalty(kernels: readonly tf.Tensor[], factor: number): tf.Scalar {
  return tf.tidy(
    () => tf.mul(factor, tf.addN(kernels.map((w) => tf.sum(tf.square(w))))) as tf.Scalar,
  );
}
