import { createDataSet, DataSet, Part } from '../dataset/dataset';

export interface SmoothOptions {
  /** Share a present label gives up to the other labels, in [0, 1); default 0.1. */
  alpha?: number;
}

/**
 * Label smoothing over the training rows: each label gives up alpha, shared among the other
 * K - 1 classes.
 *
 * A training entry y in [0, 1] becomes y * (1 - alpha) + (1 - y) * alpha / (K - 1), so 1 becomes
 * 1 - alpha, 0 becomes alpha / (K - 1) and a blended label stays between them; the number of rows
 * plays no part. Negative-sample entries (-1) and any other entry below 0 are kept, since they
 * are not probabilities. Validation and test rows are copied unchanged. Binary data (one class)
 * is refused: there are no other labels to share alpha with.
 *
 * Shapes: `y` `[rows, classes]` in and out; `x` is shared with the input, which neither writes.
 *
 * @example
 * // 4 classes, alpha 0.1: a training row [1, 0, 0.5, -1] becomes [0.9, 0.0333, 0.4667, -1]
 * const out = smoothLabels(data, { alpha: 0.1 });
 */
export function smoothLabels(data: DataSet, options: SmoothOptions = {}): DataSet {
  const alpha = options.alpha ?? 0.1;
  if (typeof alpha !== 'number' || !(alpha >= 0 && alpha < 1)) {
    throw new Error(
      `label smoothing alpha: expected a number from 0 up to (not including) 1, got ${alpha}`,
    );
  }
  const classes = data.labels.length;
  if (classes < 2) {
    throw new Error(
      `label smoothing: not available for binary data (one class "${data.labels[0] ?? ''}"); ` +
        'turn label smoothing off',
    );
  }

  const y = new Float32Array(data.y);
  const share = alpha / (classes - 1);
  for (let r = 0; r < data.rows; r++) {
    if (data.parts[r] !== Part.train) continue;
    for (let c = r * classes; c < (r + 1) * classes; c++) {
      const v = data.y[c];
      if (v >= 0 && v <= 1) y[c] = v * (1 - alpha) + (1 - v) * share;
    }
  }

  return createDataSet({
    ...data,
    y,
    parts: data.parts.slice(),
    synthetic: data.synthetic.slice(),
  });
}
