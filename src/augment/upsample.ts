import { setImmediate as nextTurn } from 'timers/promises';
import { copyYielding, createDataSet, DataSet, Part, rowsOf } from '../dataset/dataset';
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
  readonly rows: readonly number[];
  readonly missing: number;
}

/** Values of new rows blended between two turns of the event loop: a few ms of work. */
const BLEND_SLICE_VALUES = 2 * 1024 * 1024;

/** New rows as convex combinations: x = weight * x[first] + (1 - weight) * x[second]. */
interface Recipes {
  first: number[];
  second: number[];
  weight: number[];
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

  const train = rowsOf(data, Part.train);
  if (mode !== 'repeat' && isMultiLabel(data, train)) {
    throw new Error(
      `upsampling mode: multi-label data allows only "repeat", got "${mode}"; ` +
        'a mixed row could not say which of its labels it stands for',
    );
  }
  const groups =
    data.labels.length === 1 ? binaryGroups(data, train, ratio) : classGroups(data, train, ratio);
  for (const group of groups) {
    if (group.missing > 0 && group.rows.length === 0) {
      throw new Error(
        `upsampling: ${group.name} has no training rows to upsample from ` +
          `(${group.missing} needed to reach the target); ` +
          'give it training rows or turn upsampling off',
      );
    }
  }

  const recipes: Recipes = { first: [], second: [], weight: [] };
  for (const group of groups) {
    if (group.missing <= 0) continue;
    if (mode === 'smote') await addSmote(data, group, random, k, recipes);
    else addPairs(group, mode, random, recipes);
  }
  return recipes.first.length === 0 ? data : await appendRows(data, recipes);
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

function isMultiLabel(data: DataSet, train: readonly number[]): boolean {
  const classes = data.labels.length;
  return train.some((r) => {
    let ones = 0;
    for (let c = 0; c < classes; c++) if (data.y[r * classes + c] === 1) ones++;
    return ones > 1;
  });
}

function classGroups(data: DataSet, train: readonly number[], ratio: number): Group[] {
  const classes = data.labels.length;
  const members = data.labels.map((): number[] => []);
  for (const r of train) {
    for (let c = 0; c < classes; c++) if (data.y[r * classes + c] === 1) members[c].push(r);
  }
  const target = Math.trunc(Math.max(0, ...members.map((m) => m.length)) * ratio);
  return members.map((rows, c) => ({
    name: `class "${data.labels[c]}"`,
    rows,
    missing: target - rows.length,
  }));
}

function binaryGroups(data: DataSet, train: readonly number[], ratio: number): Group[] {
  const positives = train.filter((r) => data.y[r] === 1);
  const others = train.filter((r) => data.y[r] !== 1);
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
  for (let i = 0; i < group.missing; i++) {
    const a = random.choice(group.rows);
    const b = mode === 'repeat' ? a : random.choice(group.rows);
    const w = mode === 'repeat' ? 1 : mode === 'mean' ? 0.5 : random.uniform();
    recipes.first.push(a);
    recipes.second.push(b);
    recipes.weight.push(w);
  }
}

async function addSmote(
  data: DataSet,
  group: Group,
  random: Random,
  k: number,
  recipes: Recipes,
): Promise<void> {
  const seeds = Array.from({ length: group.missing }, () => random.choice(group.rows));

  const distinct = [...new Set(seeds)];
  const found = await nearestNeighbours(data.x, data.dim, group.rows, distinct, k);
  const neighbours = new Map(distinct.map((s, i) => [s, found[i]]));

  for (const s of seeds) {
    const near = neighbours.get(s) ?? new Int32Array(0);
    const neighbour = near.length === 0 ? s : near[random.int(near.length)];
    const step = near.length === 0 ? 0 : random.uniform();
    // s + step * (neighbour - s), written as a convex combination so it cannot leave the segment.
    recipes.first.push(s);
    recipes.second.push(neighbour);
    recipes.weight.push(1 - step);
  }
}

/**
 * The data set with the recipes' rows appended; hands the event loop back while it copies and
 * blends, a few megabytes at a time.
 */
async function appendRows(data: DataSet, recipes: Recipes): Promise<DataSet> {
  const { dim, rows } = data;
  const classes = data.labels.length;
  const added = recipes.first.length;
  const x = new Float32Array((rows + added) * dim);
  await copyYielding(data.x, x);
  const y = new Float32Array((rows + added) * classes);
  y.set(data.y);

  const slice = Math.max(1, Math.floor(BLEND_SLICE_VALUES / dim));
  for (let start = 0; start < added; start += slice) {
    blendRows(data, recipes, [x, y], start, Math.min(added, start + slice));
    if (start + slice < added) await nextTurn();
  }

  const parts = new Uint8Array(rows + added).fill(Part.train);
  parts.set(data.parts);
  const synthetic = new Uint8Array(rows + added).fill(1);
  synthetic.set(data.synthetic);
  return createDataSet({
    ...data,
    x,
    y,
    parts,
    synthetic,
    sources: [...data.sources, ...recipes.first.map((a) => data.sources[a])],
  });
}

/** Writes new rows `start` .. `end` of the recipes after the data set's rows into `x` and `y`. */
function blendRows(
  data: DataSet,
  recipes: Recipes,
  [x, y]: [Float32Array, Float32Array],
  start: number,
  end: number,
): void {
  const { dim, rows } = data;
  const classes = data.labels.length;
  const source = data.x;
  for (let i = start; i < end; i++) {
    const a = recipes.first[i];
    const b = recipes.second[i];
    const w = recipes.weight[i];
    const row = rows + i;
    const [to, fromA, fromB] = [row * dim, a * dim, b * dim];
    for (let d = 0; d < dim; d++) x[to + d] = w * source[fromA + d] + (1 - w) * source[fromB + d];
    for (let c = 0; c < classes; c++) y[row * classes + c] = data.y[a * classes + c];
  }
}
