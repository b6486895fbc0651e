import { setImmediate as nextTurn } from 'timers/promises';
import { copyYielding, createDataSet, DataSet, Part, rowsOf, Source } from '../dataset/dataset';
import { Random } from '../random';
import { nearestNeighbours } from './nearest';

export const UPSAMPLING_MODES = ['repeat', 'mean', 'linear', 'smote'] as const;
export type UpsamplingMode = (typeof UPSAMPLING_MODES)[number];

export interface UpsampleOptions {
  /** Share of the largest class that every class is raised to, in [0, 1]; 0 turns it off. */
  ratio: number;
  /** How a new row is made from the rows of its class; default `repeat`. */
  mode?: UpsamplingMode;
  /** The stream every draw comes from, e.g. `root.derive('upsample')`. */
  random: Random;
  /** Neighbours considered by `smote`; default 5. */
  k?: number;
}

/** Rows one class (or one side of a binary problem) is upsampled from, and how many it lacks. */
interface Group {
  /** How the group is named in errors. */
  readonly name: string;
  readonly rows: Int32Array;
  readonly missing: number;
}

/** Values of new rows blended between two turns of the event loop: a few ms of work. */
const BLEND_SLICE_VALUES = 2 * 1024 * 1024;

/**
 * New rows as convex combinations: x = weight * x[first] + (1 - weight) * x[second]; `count` of
 * them are written so far.
 */
interface Recipes {
  first: Int32Array;
  second: Int32Array;
  weight: Float64Array;
  count: number;
}

/**
 * Adds synthetic training rows until every class has trunc(max class count * ratio) rows.
 *
 * A class's count is the number of training rows whose label for it is exactly 1, counted once
 * before any row is added. With one class (binary), the count of positives is weighed against
 * every other training row (label 0 or -1) and only the smaller side is upsampled. Each new row
 * copies the label and source of its first source row, is a training row and is marked synthetic.
 * Validation and test rows are kept as they are, in order; new rows are appended at the end.
 * Resolves to `data` itself when nothing is missing. The neighbour search of `smote` hands the
 * event loop back between chunks and may use a worker thread (see nearestNeighbours).
 *
 * Modes: `repeat` copies a random row of the class; `mean` averages two random rows; `linear`
 * takes w * a + (1 - w) * b with w ~ U(0, 1); `smote` moves a random row s towards one of its k
 * nearest rows of the same class by U(0, 1) of the way (a class of one row gets copies).
 * Multi-label data (a training row with more than one 1) allows `repeat` only; there, a copied
 * row also raises the counts of its other labels, which may end above the target.
 *
 * Draws, in this order, class by class in label order: per new row, `repeat` one row index,
 * `mean` two, `linear` two and then w. `smote` draws every s of the class first, then per new row
 * a neighbour and then the step (no draws for a class of one row).
 *
 * Shapes: `x` `[rows, dim]`, `y` `[rows, classes]` in, `[rows + added, ...]` out.
 *
 * @example
 * // train rows: A x100, B x10, C x10
 * const out = await upsample(data, { ratio: 0.5, mode: 'smote', random: root.derive('upsample') });
 * // out: A 100, B 50, C 50 training rows; 80 synthetic rows appended
 */
export async function upsample(data: DataSet, options: UpsampleOptions): Promise<DataSet> {
  const { ratio, mode = 'repeat', random, k = 5 } = options;
  checkOptions(ratio, mode, k);
  if (ratio === 0) return data;

  const classes = data.labels.length;
  const members = classes === 1 ? undefined : classMembers(data);
  if (mode !== 'repeat' && members?.multiLabel === true) {
    throw new Error(
      `upsampling mode: multi-label data allows only "repeat", got "${mode}"; ` +
        'a mixed row could not say which of its labels it stands for',
    );
  }
  const groups =
    members === undefined
      ? binaryGroups(data, rowsOf(data, Part.train), ratio)
      : classGroups(data, members, ratio);
  for (const group of groups) {
    if (group.missing > 0 && group.rows.length === 0) {
      throw new Error(
        `upsampling: ${group.name} has no training rows to upsample from ` +
          `(${group.missing} needed to reach the target); ` +
          'give it training rows or turn upsampling off',
      );
    }
  }

  const added = groups.reduce((sum, group) => sum + Math.max(0, group.missing), 0);
  if (added === 0) return data;
  const recipes: Recipes = {
    first: new Int32Array(added),
    second: new Int32Array(added),
    weight: new Float64Array(added),
    count: 0,
  };
  for (const group of groups) {
    if (group.missing <= 0) continue;
    if (mode === 'smote') await addSmote(data, group, random, k, recipes);
    else addPairs(group, mode, random, recipes);
  }
  return appendRows(data, recipes);
}

function checkOptions(ratio: number, mode: string, k: number): void {
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) {
    throw new Error(`upsampling ratio: expected a number from 0 to 1, got ${ratio}`);
  }
  if (!(UPSAMPLING_MODES as readonly string[]).includes(mode)) {
    throw new Error(
      `upsampling mode: expected one of ${UPSAMPLING_MODES.join(', ')}; got "${mode}"`,
    );
  }
  if (!Number.isInteger(k) || k < 1) {
    throw new Error(`upsampling k: expected a whole number >= 1, got ${k}`);
  }
}

/** Training rows whose label for a class is exactly 1, per class; whether a row has several. */
interface Members {
  rows: Int32Array[];
  multiLabel: boolean;
}

function classMembers(data: DataSet): Members {
  const classes = data.labels.length;
  const { y, parts } = data;
  // Where each 1 of a training row lies in `y`, in row order. The array's own search goes from
  // one 1 to the next: one turn of the loop per label, not per value, which counts while the loop
  // still runs unoptimised (a first upsampling, say).
  const ones: number[] = [];
  for (let at = y.indexOf(1); at !== -1; at = y.indexOf(1, at + 1)) {
    if (parts[Math.floor(at / classes)] === Part.train) ones.push(at);
  }
  const counts = new Int32Array(classes);
  let multiLabel = false;
  for (let i = 0; i < ones.length; i++) {
    counts[ones[i] % classes]++;
    if (i > 0 && Math.floor(ones[i - 1] / classes) === Math.floor(ones[i] / classes)) {
      multiLabel = true;
    }
  }
  const rows = Array.from(counts, (n) => new Int32Array(n));
  counts.fill(0);
  for (const at of ones) {
    const c = at % classes;
    rows[c][counts[c]++] = Math.floor(at / classes);
  }
  return { rows, multiLabel };
}

function classGroups(data: DataSet, members: Members, ratio: number): Group[] {
  const target = Math.trunc(Math.max(0, ...members.rows.map((m) => m.length)) * ratio);
  return members.rows.map((rows, c) => ({
    name: `class "${data.labels[c]}"`,
    rows,
    missing: target - rows.length,
  }));
}

function binaryGroups(data: DataSet, train: readonly number[], ratio: number): Group[] {
  const positives = Int32Array.from(train.filter((r) => data.y[r] === 1));
  const others = Int32Array.from(train.filter((r) => data.y[r] !== 1));
  const target = Math.trunc(Math.max(positives.length, others.length) * ratio);
  if (positives.length < others.length) {
    return [
      { name: `class "${data.labels[0]}"`, rows: positives, missing: target - positives.length },
    ];
  }
  return [
    {
      name: `the non-event side (label 0 or -1) of class "${data.labels[0]}"`,
      rows: others,
      missing: target - others.length,
    },
  ];
}

function addPairs(group: Group, mode: UpsamplingMode, random: Random, recipes: Recipes): void {
  const { rows } = group;
  for (let i = 0; i < group.missing; i++) {
    const a = rows[random.int(rows.length)];
    const b = mode === 'repeat' ? a : rows[random.int(rows.length)];
    const w = mode === 'repeat' ? 1 : mode === 'mean' ? 0.5 : random.uniform();
    addRecipe(recipes, a, b, w);
  }
}

function addRecipe(recipes: Recipes, first: number, second: number, weight: number): void {
  const at = recipes.count++;
  recipes.first[at] = first;
  recipes.second[at] = second;
  recipes.weight[at] = weight;
}

async function addSmote(
  data: DataSet,
  group: Group,
  random: Random,
  k: number,
  recipes: Recipes,
): Promise<void> {
  const { rows } = group;
  const seeds = new Int32Array(group.missing);
  for (let i = 0; i < seeds.length; i++) seeds[i] = rows[random.int(rows.length)];

  // Each distinct seed is searched once, in the order of its first draw; slot[s] - 1 is where.
  const distinct: number[] = [];
  const slot = new Int32Array(data.rows);
  for (const s of seeds) if (slot[s] === 0) slot[s] = distinct.push(s);
  const found = await nearestNeighbours(data.x, data.dim, rows, distinct, k);

  for (const s of seeds) {
    const near = found[slot[s] - 1];
    const neighbour = near.length === 0 ? s : near[random.int(near.length)];
    const step = near.length === 0 ? 0 : random.uniform();
    // s + step * (neighbour - s), written as a convex combination so it cannot leave the segment.
    addRecipe(recipes, s, neighbour, 1 - step);
  }
}

/**
 * The data set with the recipes' rows appended; hands the event loop back while it copies and
 * blends, a few megabytes at a time.
 */
async function appendRows(data: DataSet, recipes: Recipes): Promise<DataSet> {
  const { dim, rows } = data;
  const classes = data.labels.length;
  const added = recipes.count;
  const x = new Float32Array((rows + added) * dim);
  await copyYielding(data.x, x);
  const y = new Float32Array((rows + added) * classes);
  y.set(data.y);

  const slice = Math.max(1, Math.floor(BLEND_SLICE_VALUES / dim));
  for (let start = 0; start < added; start += slice) {
    blendRows(data, recipes, x, y, start, Math.min(added, start + slice));
    if (start + slice < added) await nextTurn();
  }

  const parts = new Uint8Array(rows + added).fill(Part.train);
  parts.set(data.parts);
  const synthetic = new Uint8Array(rows + added).fill(1);
  synthetic.set(data.synthetic);
  const sources = new Array<Source | undefined>(rows + added);
  for (let r = 0; r < rows; r++) sources[r] = data.sources[r];
  for (let i = 0; i < added; i++) sources[rows + i] = data.sources[recipes.first[i]];
  return createDataSet({ ...data, x, y, parts, synthetic, sources });
}

/**
 * Writes new rows `start` .. `end` of the recipes after the data set's rows into `x` and `y`,
 * which already hold the data set's rows at their start.
 */
function blendRows(
  data: DataSet,
  recipes: Recipes,
  x: Float32Array,
  y: Float32Array,
  start: number,
  end: number,
): void {
  const { dim, rows } = data;
  const classes = data.labels.length;
  const { first, second, weight } = recipes;
  for (let i = start; i < end; i++) {
    const a = first[i];
    const w = weight[i];
    copyLabels(y, (rows + i) * classes, a * classes, classes);
    if (w === 1) x.copyWithin((rows + i) * dim, a * dim, (a + 1) * dim);
    else blendRow(x, (rows + i) * dim, a * dim, second[i] * dim, w, dim);
  }
}

// The per-row loops are functions of their own: called once per row, they are optimised after a
// few hundred rows, while a loop inside the loop over rows waits for that loop to be.

/** Copies a row of `classes` labels from `from` to `to`: a loop, as a row of labels is short. */
function copyLabels(y: Float32Array, to: number, from: number, classes: number): void {
  for (let c = 0; c < classes; c++) y[to + c] = y[from + c];
}

/** Writes w * x[fromA ..] + (1 - w) * x[fromB ..], `dim` values, at `to`. */
function blendRow(
  x: Float32Array,
  to: number,
  fromA: number,
  fromB: number,
  w: number,
  dim: number,
): void {
  for (let d = 0; d < dim; d++) x[to + d] = w * x[fromA + d] + (1 - w) * x[fromB + d];
}
