import { copyYielding, createDataSet, DataSet, Part, rowsOf } from '../dataset/dataset';
import { Random } from '../random';

/** Share of the candidate rows that mixup replaces. */
const MIXUP_SHARE = 0.25;
/** Both parameters of the Beta distribution lambda is drawn from. */
const MIXUP_ALPHA = 0.2;

export interface MixupOptions {
  /** The stream every draw comes from, e.g. `root.derive('mixup')`. */
  random: Random;
}

/**
 * Replaces a quarter of the training rows that carry a label by blends with other such rows.
 *
 * Candidates are training rows with at least one label equal to 1. trunc(0.25 * candidates) of
 * them are replaced in place by lambda * self + (1 - lambda) * other, features and labels alike
 * (labels weighted, not maxed), with lambda ~ Beta(0.2, 0.2). `other` is another candidate not
 * mixed yet, so every blend is made of original rows and no row is mixed twice. Rows keep their
 * part, source and synthetic flag; the data set keeps its size; validation and test rows are
 * copied unchanged. Binary data (one class) is refused: a blend of a positive and a non-event row
 * would be a label the binary setup does not expect.
 *
 * Draws, per replaced row: the row, then its partner, then lambda.
 *
 * Shapes: `x` `[rows, dim]` and `y` `[rows, classes]` in and out.
 *
 * @example
 * // 8 training rows labelled 1 somewhere: 2 of them become blends
 * const out = mixup(data, { random: root.derive('mixup') });
 */
export function mixup(data: DataSet, options: MixupOptions): DataSet {
  checkMixup(data);
  return mixupInto(data, new Float32Array(data.x), options);
}

/**
 * {@link mixup}, copying the features first a slice at a time with the event loop handed back
 * between slices, as a data set of hundreds of megabytes takes a while to copy.
 */
export async function mixupYielding(data: DataSet, options: MixupOptions): Promise<DataSet> {
  checkMixup(data);
  return mixupInto(data, await copyYielding(data.x), options);
}

function checkMixup(data: DataSet): void {
  if (data.labels.length < 2) {
    throw new Error(
      `mixup: not available for binary data (one class "${data.labels[0] ?? ''}"); turn mixup off`,
    );
  }
}

/** Mixup with `x`, a copy of the data set's features, blended in place. */
function mixupInto(data: DataSet, x: Float32Array, options: MixupOptions): DataSet {
  const { dim } = data;
  const classes = data.labels.length;
  const y = new Float32Array(data.y);

  const pool = candidates(data);
  const count = Math.trunc(MIXUP_SHARE * pool.length);
  const lambdas = options.random.beta(MIXUP_ALPHA, MIXUP_ALPHA);

  for (let i = 0; i < count; i++) {
    const at = options.random.int(pool.length);
    const self = pool[at];
    const skip = options.random.int(pool.length - 1);
    const other = pool[skip < at ? skip : skip + 1];
    const lambda = lambdas();
    blend(x, data.x, dim, self, other, lambda);
    blend(y, data.y, classes, self, other, lambda);
    // Swap-remove: a mixed row may be neither mixed again nor used as a partner.
    pool[at] = pool[pool.length - 1];
    pool.pop();
  }

  return createDataSet({
    ...data,
    x,
    y,
    parts: data.parts.slice(),
    synthetic: data.synthetic.slice(),
  });
}

/** How many rows {@link mixup} replaces in `data`: trunc(0.25 * candidates). */
export function mixupCount(data: DataSet): number {
  return Math.trunc(MIXUP_SHARE * candidates(data).length);
}

/** Training rows with at least one label equal to 1, in order. */
function candidates(data: DataSet): number[] {
  const classes = data.labels.length;
  return rowsOf(data, Part.train).filter((r) =>
    data.y.subarray(r * classes, (r + 1) * classes).some((v) => v === 1),
  );
}

/** Writes lambda * from[self] + (1 - lambda) * from[other] into row `self` of `into`. */
function blend(
  into: Float32Array,
  from: Float32Array,
  width: number,
  self: number,
  other: number,
  lambda: number,
): void {
  for (let d = 0; d < width; d++) {
    into[self * width + d] =
      lambda * from[self * width + d] + (1 - lambda) * from[other * width + d];
  }
}
