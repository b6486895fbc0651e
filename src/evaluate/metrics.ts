import { setImmediate as nextTurn } from 'timers/promises';

/**
 * Per-class metrics of a multi-label classifier: average precision, ROC AUC, counts and F1 at a
 * threshold, the F1-best threshold on a fixed grid, and a report with a macro row.
 *
 * Labels are read the same way everywhere: an entry counts as positive when it is >= 0.5, so
 * negative-sample rows (-1) are negatives and mixed or smoothed labels fall on the nearer side.
 * A score counts as a positive prediction when it is >= the threshold, compared as stored (a
 * float32 score of 0.35 is slightly below the number 0.35), the same way a predictor compares it.
 */

/** Counts and rates of one class at one threshold. */
export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  precision: number;
  recall: number;
  f1: number;
}

/** The F1-best grid threshold of one class and the rates there. */
export interface ThresholdChoice {
  threshold: number;
  f1: number;
  precision: number;
  recall: number;
}

/** One row of an evaluation report: a class, or the macro row over all classes. */
export interface ClassMetrics {
  label: string;
  /** Positive rows of the class; in the macro row, the sum over classes. */
  samples: number;
  /** Precision, recall and F1 at threshold 0.5. */
  precision: number;
  recall: number;
  f1: number;
  /** F1-best threshold from {@link THRESHOLD_GRID}; in the macro row, the mean of the classes'. */
  threshold: number;
  /** Precision, recall and F1 at {@link ClassMetrics.threshold}. */
  precisionAtThreshold: number;
  recallAtThreshold: number;
  f1AtThreshold: number;
  /** Undefined when the class has no positive rows. */
  averagePrecision: number | undefined;
  /** Undefined when the class has no positive rows or no negative rows. */
  rocAuc: number | undefined;
  /** Counts at threshold 0.5; in the macro row, sums over classes. */
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** What {@link evaluate} returns. */
export interface EvaluationReport {
  /** Mean over the classes of every rate column, sums of the count columns. */
  macro: ClassMetrics;
  /** One row per class, in model output order. */
  classes: ClassMetrics[];
  /** Rows evaluated. */
  rows: number;
  /** Top-1 accuracy over single-label rows; undefined when there are none. */
  top1: number | undefined;
  /** Why a column of the macro row leaves a class out, one sentence per class and reason. */
  warnings: string[];
}

/** Candidate thresholds for the F1-best choice: 0.10, 0.15, ..., 0.85 (16 values). */
export const THRESHOLD_GRID: readonly number[] = Object.freeze(
  Array.from({ length: 16 }, (_, i) => Math.round((0.1 + i * 0.05) * 100) / 100),
);

const POSITIVE = 0.5;

/**
 * Average precision exactly as scikit-learn's `average_precision_score`: rows sorted by score,
 * highest first, tied scores forming one threshold, AP = sum_n (R_n - R_{n-1}) * P_n.
 *
 * @param labels `[rows]`, an entry >= 0.5 is positive.
 * @param scores `[rows]`, higher means more likely positive; NaN is refused.
 * @returns AP in [0, 1], or undefined when no label is positive.
 */
export function averagePrecision(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
): number | undefined {
  return rankedMetrics(splitByLabel(labels, scores)).averagePrecision;
}

/**
 * Area under the ROC curve by the trapezoidal rule, which equals the Mann-Whitney probability that
 * a positive scores above a negative, a tie counting half.
 *
 * @param labels `[rows]`, an entry >= 0.5 is positive.
 * @param scores `[rows]`; NaN is refused.
 * @returns AUC in [0, 1], or undefined when there is no positive or no negative row.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number | undefined {
  return rankedMetrics(splitByLabel(labels, scores)).rocAuc;
}

/**
 * Counts and rates at one threshold; a score >= threshold is a positive prediction.
 *
 * Precision is 0 when nothing is predicted positive, recall is 0 when there are no positive rows,
 * and F1 is 0 when precision + recall is 0, so every rate is a number.
 *
 * @param labels `[rows]`, an entry >= 0.5 is positive.
 * @param scores `[rows]`.
 */
export function confusionAt(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  threshold: number,
): Confusion {
  checkLengths(labels, scores);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const positive = labels[i] >= POSITIVE;
    if (scores[i] >= threshold) {
      if (positive) tp++;
      else fp++;
    } else if (positive) fn++;
    else tn++;
  }

  return { tp, fp, tn, fn, ...rates(tp, fp, fn) };
}

/**
 * The threshold of {@link THRESHOLD_GRID} with the highest F1; on equal F1 the lower threshold
 * wins, so fewer positives are missed.
 *
 * @param labels `[rows]`, an entry >= 0.5 is positive.
 * @param scores `[rows]`.
 */
export function bestF1Threshold(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
): ThresholdChoice {
  let best: ThresholdChoice = { threshold: THRESHOLD_GRID[0], f1: -1, precision: 0, recall: 0 };
  for (const threshold of THRESHOLD_GRID) {
    const { f1, precision, recall } = confusionAt(labels, scores, threshold);
    if (f1 > best.f1) best = { threshold, f1, precision, recall };
  }
  return best;
}

/**
 * Evaluates every class of a multi-label classifier and adds a macro row.
 *
 * The macro row's rates are means of the classes' rates (its F1 is the mean of the classes' F1,
 * not the F1 of the mean precision and recall). A class whose average precision or ROC AUC is
 * undefined is left out of that column's mean only, and `warnings` says so.
 *
 * @param y `[rows, classes]` float32 row-major labels; an entry >= 0.5 is positive.
 * @param scores `[rows, classes]` float32 row-major scores, e.g. sigmoid outputs.
 * @param rows number of rows.
 * @param labelNames `[classes]` class names in column order.
 */
export function evaluate(
  y: Float32Array,
  scores: Float32Array,
  rows: number,
  labelNames: readonly string[],
): EvaluationReport {
  const report = new ReportBuilder(y, scores, rows, labelNames);
  for (let c = 0; c < labelNames.length; c++) report.add(c);
  return report.value();
}

/**
 * {@link evaluate}, handing the event loop back whenever a few classes have taken `sliceMs`
 * together, so that a host stays responsive while thousands of rows are evaluated.
 */
export async function evaluateYielding(
  y: Float32Array,
  scores: Float32Array,
  rows: number,
  labelNames: readonly string[],
  sliceMs = 20,
): Promise<EvaluationReport> {
  const report = new ReportBuilder(y, scores, rows, labelNames);
  await eachYielding(labelNames.length, (c) => report.add(c), sliceMs);
  return report.value();
}

/** Runs `body(i)` for i in [0, count), handing the event loop back after every `sliceMs`. */
async function eachYielding(
  count: number,
  body: (i: number) => void,
  sliceMs: number,
): Promise<void> {
  let since = Date.now();
  for (let i = 0; i < count; i++) {
    body(i);
    if (Date.now() - since >= sliceMs) {
      await nextTurn();
      since = Date.now();
    }
  }
}

/** An evaluation report, a class at a time. */
class ReportBuilder {
  private readonly warnings: string[] = [];
  private readonly perClass: ClassMetrics[] = [];
  private readonly buffer: Float64Array;
  private readonly labels: Float32Array;
  private readonly column: Float32Array;

  constructor(
    private readonly y: Float32Array,
    private readonly scores: Float32Array,
    private readonly rows: number,
    private readonly labelNames: readonly string[],
  ) {
    if (labelNames.length === 0) {
      throw new RangeError('labelNames is empty: there is no class to evaluate');
    }
    checkRows(rows);
    checkMatrix(y, scores, rows, labelNames.length);
    this.buffer = new Float64Array(rows);
    this.labels = new Float32Array(rows);
    this.column = new Float32Array(rows);
  }

  add(c: number): void {
    const { y, scores, rows, labels, column } = this;
    const classes = this.labelNames.length;
    const label = this.labelNames[c];
    for (let r = 0; r < rows; r++) {
      labels[r] = y[r * classes + c];
      column[r] = scores[r * classes + c];
    }
    const split = splitByLabel(labels, column, this.buffer);
    const ranked = rankedMetrics(split);
    this.warnings.push(...undefinedWarnings(label, split));

    const at = confusionAt(labels, column, POSITIVE);
    const best = bestF1Threshold(labels, column);
    this.perClass.push({
      label,
      samples: split.positives.length,
      precision: at.precision,
      recall: at.recall,
      f1: at.f1,
      threshold: best.threshold,
      precisionAtThreshold: best.precision,
      recallAtThreshold: best.recall,
      f1AtThreshold: best.f1,
      averagePrecision: ranked.averagePrecision,
      rocAuc: ranked.rocAuc,
      tp: at.tp,
      fp: at.fp,
      tn: at.tn,
      fn: at.fn,
    });
  }

  value(): EvaluationReport {
    const { perClass, warnings, rows } = this;
    const classes = this.labelNames.length;
    // Every column of the macro row averages over the same classes: those with positive rows.
    const scored = perClass.filter((m) => m.samples > 0);
    if (scored.length > 0 && scored.length < classes) {
      warnings.push(
        `the macro row averages over the ${scored.length} of ${classes} classes that have ` +
          `positive rows in the evaluation data`,
      );
    }
    return {
      macro: macroRow(scored.length > 0 ? scored : perClass),
      classes: perClass,
      rows,
      // With one class the top class is always right: the figure would say nothing.
      top1: classes > 1 ? topOneAccuracy(this.y, this.scores, rows, classes) : undefined,
      warnings,
    };
  }
}

/**
 * Mean average precision over the classes that have a positive row. Meant to run every epoch:
 * one sort per class, O(rows log rows) each.
 *
 * @param y `[rows, classes]` row-major labels; an entry >= 0.5 is positive.
 * @param scores `[rows, classes]` row-major scores.
 * @param rows number of rows.
 * @param classes number of classes (columns); when left out, `y.length / rows`.
 * @returns the mean, or undefined when no class has a positive row.
 */
export function macroAuprc(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes?: number,
): number | undefined {
  return macroRanking(y, scores, rows, classes).auprc;
}

/**
 * Mean ROC AUC over the classes that have both positive and negative rows. Meant to run every
 * epoch: one sort per class, O(rows log rows) each.
 *
 * @param y `[rows, classes]` row-major labels; an entry >= 0.5 is positive.
 * @param scores `[rows, classes]` row-major scores.
 * @param rows number of rows.
 * @param classes number of classes (columns); when left out, `y.length / rows`.
 * @returns the mean, or undefined when no class has both.
 */
export function macroAuroc(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes?: number,
): number | undefined {
  return macroRanking(y, scores, rows, classes).auroc;
}

/**
 * {@link macroAuprc} and {@link macroAuroc} from the same sort, for a caller that wants both:
 * the sort is nearly all of the cost, so this takes half the time of calling the two.
 *
 * @param y `[rows, classes]` row-major labels; an entry >= 0.5 is positive.
 * @param scores `[rows, classes]` row-major scores.
 * @param rows number of rows.
 * @param classes number of classes (columns); when left out, `y.length / rows`.
 */
export function macroRanking(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes = rows === 0 ? 0 : y.length / rows,
): { auprc: number | undefined; auroc: number | undefined } {
  const ranking = new MacroRanking(y, scores, rows, classes);
  for (let c = 0; c < classes; c++) ranking.add(c);
  return ranking.value();
}

/**
 * {@link macroRanking}, handing the event loop back whenever a few classes have taken
 * `sliceMs` together, so that a host stays responsive while thousands of rows are ranked.
 */
export async function macroRankingYielding(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes = rows === 0 ? 0 : y.length / rows,
  sliceMs = 20,
): Promise<{ auprc: number | undefined; auroc: number | undefined }> {
  const ranking = new MacroRanking(y, scores, rows, classes);
  await eachYielding(classes, (c) => ranking.add(c), sliceMs);
  return ranking.value();
}

/** Mean average precision and ROC AUC, a class at a time. */
class MacroRanking {
  private readonly buffer: Float64Array;
  private readonly labels: Float64Array;
  private readonly column: Float64Array;
  private readonly ap = new RunningMean();
  private readonly auc = new RunningMean();

  constructor(
    private readonly y: ArrayLike<number>,
    private readonly scores: ArrayLike<number>,
    private readonly rows: number,
    private readonly classes: number,
  ) {
    checkRows(rows);
    if (!Number.isInteger(classes) || classes < 0) {
      throw new RangeError(
        `classes must be a non-negative integer, got ${classes} (y has ${y.length} entries)`,
      );
    }
    checkMatrix(y, scores, rows, classes);
    this.buffer = new Float64Array(rows);
    this.labels = new Float64Array(rows);
    this.column = new Float64Array(rows);
  }

  add(c: number): void {
    const { y, scores, rows, classes, labels, column } = this;
    for (let r = 0; r < rows; r++) {
      labels[r] = y[r * classes + c];
      column[r] = scores[r * classes + c];
    }
    const ranked = rankedMetrics(splitByLabel(labels, column, this.buffer));
    this.ap.add(ranked.averagePrecision);
    this.auc.add(ranked.rocAuc);
  }

  value(): { auprc: number | undefined; auroc: number | undefined } {
    return { auprc: this.ap.value(), auroc: this.auc.value() };
  }
}

/** A mean that skips undefined values and is itself undefined when nothing was added. */
class RunningMean {
  private sum = 0;
  private count = 0;

  add(value: number | undefined): void {
    if (value === undefined) return;
    this.sum += value;
    this.count++;
  }

  value(): number | undefined {
    return this.count === 0 ? undefined : this.sum / this.count;
  }
}

/** Scores of one class's positive and negative rows, each sorted ascending. */
interface Split {
  positives: Float64Array;
  negatives: Float64Array;
}

/**
 * Splits scores by label and sorts each part. Sorting two plain numeric arrays lets the engine use
 * its native sort instead of calling a comparator per step, which matters when this runs for every
 * class every epoch. `buffer` (length >= rows) is reused across calls when given.
 */
function splitByLabel(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  buffer: Float64Array = new Float64Array(labels.length),
): Split {
  checkLengths(labels, scores);
  const n = labels.length;
  let p = 0;
  let q = n;
  for (let i = 0; i < n; i++) {
    const score = scores[i];
    if (Number.isNaN(score)) throw new RangeError(`scores[${i}] is NaN`);
    if (Number.isNaN(labels[i])) throw new RangeError(`labels[${i}] is NaN`);
    if (labels[i] >= POSITIVE) buffer[p++] = score;
    else buffer[--q] = score;
  }

  return { positives: buffer.subarray(0, p).sort(), negatives: buffer.subarray(q, n).sort() };
}

/**
 * Average precision and ROC AUC from one walk over the distinct scores, highest first. At each
 * distinct score s, every row scoring >= s is predicted positive (one threshold per tie group).
 */
function rankedMetrics({ positives, negatives }: Split): {
  averagePrecision: number | undefined;
  rocAuc: number | undefined;
} {
  const nPos = positives.length;
  const nNeg = negatives.length;
  if (nPos === 0) return { averagePrecision: undefined, rocAuc: undefined };

  let i = nPos - 1;
  let j = nNeg - 1;
  let tp = 0;
  let fp = 0;
  let ap = 0;
  let pairs = 0;
  while (i >= 0) {
    const s = j >= 0 && negatives[j] > positives[i] ? negatives[j] : positives[i];
    let posTied = 0;
    let negTied = 0;
    while (i >= 0 && positives[i] === s) {
      posTied++;
      i--;
    }
    while (j >= 0 && negatives[j] === s) {
      negTied++;
      j--;
    }

    // Negatives below this group rank under each of its positives; tied ones count half.
    pairs += posTied * (nNeg - fp - negTied / 2);
    tp += posTied;
    fp += negTied;
    if (posTied > 0) ap += (posTied / nPos) * (tp / (tp + fp));
  }

  return {
    averagePrecision: ap,
    rocAuc: nNeg === 0 ? undefined : pairs / (nPos * nNeg),
  };
}

function rates(tp: number, fp: number, fn: number): Omit<Confusion, 'tp' | 'fp' | 'tn' | 'fn'> {
  const predicted = tp + fp;
  const actual = tp + fn;

  // 2tp / (2tp + fp + fn) equals 2PR / (P + R) and is exact for equal ratios, so ties between
  // thresholds compare equal instead of differing in the last bit.
  const denominator = 2 * tp + fp + fn;
  return {
    precision: predicted === 0 ? 0 : tp / predicted,
    recall: actual === 0 ? 0 : tp / actual,
    f1: tp === 0 ? 0 : (2 * tp) / denominator,
  };
}

function undefinedWarnings(label: string, { positives, negatives }: Split): string[] {
  const name = JSON.stringify(label);
  if (positives.length === 0) {
    return [
      `class ${name} has no positive rows in the evaluation data: its average precision and ` +
        'ROC AUC are undefined and left out of the macro row',
    ];
  }
  if (negatives.length === 0) {
    return [
      `class ${name} has no negative rows in the evaluation data: its ROC AUC is undefined and ` +
        'left out of the macro row',
    ];
  }
  return [];
}

function macroRow(perClass: readonly ClassMetrics[]): ClassMetrics {
  const mean = (pick: (m: ClassMetrics) => number | undefined): number | undefined => {
    const running = new RunningMean();
    for (const m of perClass) running.add(pick(m));
    return running.value();
  };
  const sum = (pick: (m: ClassMetrics) => number): number =>
    perClass.reduce((total, m) => total + pick(m), 0);

  // Never undefined: the caller guarantees at least one class and these columns are always set.
  const meanOfAll = (pick: (m: ClassMetrics) => number): number => mean(pick) as number;
  return {
    label: 'macro',
    samples: sum((m) => m.samples),
    precision: meanOfAll((m) => m.precision),
    recall: meanOfAll((m) => m.recall),
    f1: meanOfAll((m) => m.f1),
    threshold: meanOfAll((m) => m.threshold),
    precisionAtThreshold: meanOfAll((m) => m.precisionAtThreshold),
    recallAtThreshold: meanOfAll((m) => m.recallAtThreshold),
    f1AtThreshold: meanOfAll((m) => m.f1AtThreshold),
    averagePrecision: mean((m) => m.averagePrecision),
    rocAuc: mean((m) => m.rocAuc),
    tp: sum((m) => m.tp),
    fp: sum((m) => m.fp),
    tn: sum((m) => m.tn),
    fn: sum((m) => m.fn),
  };
}

/**
 * For each single-label row (exactly one entry equal to 1): its class and its highest-scoring
 * class; on equal highest scores the first column wins. Rows with several 1s or with none (empty,
 * negative samples, smoothed labels) are skipped: "the top class" has no single right answer there.
 *
 * @param y `[rows, classes]` row-major labels.
 * @param scores `[rows, classes]` row-major scores.
 */
export function topOnePairs(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes: number,
): { truth: number; top: number }[] {
  const pairs: { truth: number; top: number }[] = [];
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    let truth = -1;
    let ones = 0;
    let top = 0;
    for (let c = 0; c < classes; c++) {
      if (y[base + c] === 1) {
        ones++;
        truth = c;
      }
      if (scores[base + c] > scores[base + top]) top = c;
    }
    if (ones === 1) pairs.push({ truth, top });
  }
  return pairs;
}

/** Share of {@link topOnePairs} whose top class is the true one; undefined without such rows. */
function topOneAccuracy(
  y: Float32Array,
  scores: Float32Array,
  rows: number,
  classes: number,
): number | undefined {
  const pairs = topOnePairs(y, scores, rows, classes);
  const correct = pairs.filter((p) => p.top === p.truth).length;
  return pairs.length === 0 ? undefined : correct / pairs.length;
}

function checkLengths(labels: ArrayLike<number>, scores: ArrayLike<number>): void {
  if (labels.length !== scores.length) {
    throw new RangeError(
      `labels and scores differ in length: ${labels.length} labels, ${scores.length} scores`,
    );
  }
}

function checkMatrix(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes: number,
): void {
  if (y.length !== rows * classes) {
    throw new RangeError(
      `y has ${y.length} entries, expected ${rows} rows x ${classes} classes = ${rows * classes}`,
    );
  }
  if (scores.length !== y.length) {
    throw new RangeError(`scores has ${scores.length} entries, y has ${y.length}; they must match`);
  }
}

function checkRows(rows: number): void {
  if (!Number.isInteger(rows) || rows < 0) {
    throw new RangeError(`rows must be a non-negative integer, got ${rows}`);
  }
}
