import { setImmediate as nextTurn } from 'timers/promises';
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
  const x = new Float32Array(data.x);
  const y = new Float32Array(data.y);
  const blends = drawBlends(data, options);
  blendRows(data, [x, y], blends, 0, blends.self.length);
  return mixed(data, x, y);
}

/** Values of features blended between two turns of the event loop: a few ms of work. */
const BLEND_SLICE_VALUES = 2 * 1024 * 1024;

/**
 * {@link mixup}, copying the features and blending rows a slice at a time with the event loop
 * handed back between slices, as a data set of hundreds of megabytes takes a while to copy.
 */
export async function mixupYielding(data: DataSet, options: MixupOptions): Promise<DataSet> {
  checkMixup(data);
  const x = await copyYielding(data.x);
  const y = new Float32Array(data.y);
  const blends = drawBlends(data, options);
  const count = blends.self.length;
  const slice = Math.max(1, Math.floor(BLEND_SLICE_VALUES / data.dim));
  for (let start = 0; start < count; start += slice) {
    await nextTurn();
    blendRows(data, [x, y], blends, start, Math.min(count, start + slice));
  }
  return mixed(data, x, y);
}

function checkMixup(data: DataSet): void {
  if (data.labels.length < 2) {
    throw new Error(
      `mixup: not available for binary data (one class "${data.labels[0] ?? ''}"); turn mixup off`,
    );
  }
}

/** Row i of the data set becomes lambda[i] * row self[i] + (1 - lambda[i]) * row other[i]. */
interface Blends {
  self: Int32Array;
  other: Int32Array;
  lambda: Float64Array;
}

function drawBlends(data: DataSet, options: MixupOptions): Blends {
  const pool = candidates(data);
  const count = Math.trunc(MIXUP_SHARE * pool.length);
  const lambdas = options.random.beta(MIXUP_ALPHA, MIXUP_ALPHA);
  const blends = {
    self: new Int32Array(count),
    other: new Int32Array(count),
    lambda: new Float64Array(count),
  };
  for (let i = 0; i < count; i++) {
    const at = options.random.int(pool.length);
    const skip = options.random.int(pool.length - 1);
    blends.self[i] = pool[at];
    blends.other[i] = pool[skip < at ? skip : skip + 1];
    blends.lambda[i] = lambdas();
    // Swap-remove: a mixed row may be neither mixed again nor used as a partner.
    pool[at] = pool[pool.length - 1];
    pool.pop();
  }
  return blends;
}

/** Blends `start` .. `end` into `x` and `y`, which hold copies of the data set's rows. */
function blendRows(
  data: DataSet,
  [x, y]: [Float32Array, Float32Array],
  { self, other, lambda }: Blends,
  start: number,
  end: number,
): void {
  const classes = data.labels.length;
  for (let i = start; i < end; i++) {
    blend(x, data.x, data.dim, self[i], other[i], lambda[i]);
    blend(y, data.y, classes, self[i], other[i], lambda[i]);
  }
}

function mixed(data: DataSet, x: Float32Array, y: Float32Array): DataSet {
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
  return rowsOf(data, Part.train).filter((r) => {
    for (let c = r * classes; c < (r + 1) * classes; c++) if (data.y[c] === 1) return true;
    return false;
  });
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
