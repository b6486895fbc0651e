/**
 * Pictures of a training run and an evaluation, as SVG text: training curves, precision-recall
 * curves per class and a confusion matrix. Each is a Vega-Lite chart, compiled by Vega and
 * rendered headless (no canvas, no browser); every value is inline, so nothing is ever loaded.
 */
import type { Loader, View } from 'vega';
import type { TopLevelSpec } from 'vega-lite/build/index';
import { importEsm } from '../esm';
import type { EpochStats } from '../train/trainer';
import { topOnePairs } from './metrics';

type VegaModule = typeof import('vega');
// Type-only: Vega-Lite's types sit behind its `exports` map, which our module resolution skips.
type VegaLiteModule = typeof import('vega-lite/build/index');

let libraries: Promise<[VegaModule, VegaLiteModule]> | undefined;

// Vega and Vega-Lite are ES modules only.
function loadLibraries(): Promise<[VegaModule, VegaLiteModule]> {
  libraries ??= Promise.all([
    importEsm<VegaModule>('vega'),
    importEsm<VegaLiteModule>('vega-lite'),
  ]).catch((err: unknown) => {
    libraries = undefined;
    throw err;
  });
  return libraries;
}

/** A loader that refuses every request and remembers what was asked: charts carry data inline. */
function offlineLoader(refused: string[]): Loader {
  const refuse = (uri: string) => {
    refused.push(uri);
    return Promise.reject(new Error(`plots: charts load nothing, refused ${uri}`));
  };
  return { load: refuse, sanitize: refuse, http: refuse, file: refuse };
}

/** The file each chart is written to, where charts are written to a folder. */
export const CHART_FILES = {
  curves: 'curves.svg',
  precisionRecall: 'precision-recall.svg',
  confusion: 'confusion.svg',
} as const;

/**
 * Compiles a Vega-Lite chart and renders it to an SVG document (`<svg ...>...</svg>`). A chart
 * that asks for data or images by URL is refused: nothing is fetched.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vegaLite] = await loadLibraries();
  const runtime = vega.parse(vegaLite.compile(spec).spec);
  const refused: string[] = [];
  const view: View = new vega.View(runtime, { renderer: 'none', loader: offlineLoader(refused) });
  try {
    const svg = await view.toSVG();
    if (refused.length > 0) {
      throw new Error(`plots: a chart must carry its data inline; it asked for ${refused[0]}`);
    }
    return svg;
  } finally {
    view.finalize();
  }
}

/** One point of a precision-recall curve. */
export interface PrecisionRecallPoint {
  /** Rows scoring >= this are predicted positive; Infinity for the first point. */
  threshold: number;
  precision: number;
  recall: number;
}

const POSITIVE = 0.5;

/**
 * The precision-recall curve of one class, as scikit-learn's `precision_recall_curve` draws it:
 * one point per distinct score, highest first (tied scores are one threshold), from the point
 * (recall 0, precision 1) up to the first threshold that reaches full recall. The area under its
 * steps is the class's average precision.
 *
 * @param labels `[rows]`, an entry >= 0.5 is positive (as in the metrics).
 * @param scores `[rows]`; NaN is refused.
 * @returns the points in order of rising recall; empty when no label is positive.
 */
export function precisionRecallPoints(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
): PrecisionRecallPoint[] {
  if (labels.length !== scores.length) {
    throw new RangeError(`labels (${labels.length}) and scores (${scores.length}) differ`);
  }
  const order = Array.from({ length: scores.length }, (_, i) => i);
  for (const i of order) if (Number.isNaN(scores[i])) throw new RangeError(`scores[${i}] is NaN`);
  order.sort((a, b) => scores[b] - scores[a]);
  const positives = order.reduce((n, i) => n + (labels[i] >= POSITIVE ? 1 : 0), 0);
  if (positives === 0) return [];

  const points: PrecisionRecallPoint[] = [{ threshold: Infinity, precision: 1, recall: 0 }];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < order.length && tp < positives;) {
    const threshold = scores[order[k]];
    for (; k < order.length && scores[order[k]] === threshold; k++) {
      if (labels[order[k]] >= POSITIVE) tp++;
      else fp++;
    }
    points.push({ threshold, precision: tp / (tp + fp), recall: tp / positives });
  }
  return points;
}

/** Top-1 predictions against the true class, over single-label rows. */
export interface ConfusionMatrix {
  /** `counts[t][p]`: rows of true class t whose highest score is class p. */
  counts: number[][];
  /** Single-label rows counted (rows with exactly one label equal to 1). */
  rows: number;
}

/**
 * Counts the top-1 predicted class against the true class over single-label rows, the rows the
 * metrics' top-1 accuracy counts: exactly one entry equal to 1; on equal highest scores the first
 * class wins. The diagonal sum over `rows` is that accuracy.
 *
 * @param y `[rows, classes]` row-major labels.
 * @param scores `[rows, classes]` row-major scores.
 */
export function confusionMatrix(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes: number,
): ConfusionMatrix {
  checkMatrix(y, scores, rows, classes);
  const counts = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  const pairs = topOnePairs(y, scores, rows, classes);
  for (const { truth, top } of pairs) counts[truth][top]++;
  return { counts, rows: pairs.length };
}

const WIDTH = 360;
const HEIGHT = 240;

/**
 * Training curves: loss and validation loss per epoch beside validation AUPRC per epoch. Epochs
 * without a value (no validation part) are left out of that line.
 */
export async function trainingCurvesSvg(history: readonly EpochStats[]): Promise<string> {
  const losses = history.flatMap((e) => [
    { epoch: e.epoch, series: 'loss', value: e.loss },
    ...(e.valLoss === undefined ? [] : [{ epoch: e.epoch, series: 'val_loss', value: e.valLoss }]),
  ]);
  const auprc = history.flatMap((e) =>
    e.valAuprc === undefined ? [] : [{ epoch: e.epoch, value: e.valAuprc }],
  );
  const epochAxis = {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    axis: { tickMinStep: 1, format: 'd' },
  } as const;

  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Training curves',
    hconcat: [
      {
        title: 'Loss',
        width: WIDTH,
        height: HEIGHT,
        data: { values: losses },
        mark: { type: 'line', point: true },
        encoding: {
          x: epochAxis,
          y: { field: 'value', type: 'quantitative', title: 'loss' },
          color: { field: 'series', type: 'nominal', title: 'series' },
        },
      },
      {
        title: 'Validation AUPRC',
        width: WIDTH,
        height: HEIGHT,
        data: { values: auprc },
        mark: { type: 'line', point: true, color: '#2ca02c' },
        encoding: {
          x: epochAxis,
          y: {
            field: 'value',
            type: 'quantitative',
            title: 'validation AUPRC',
            scale: { domain: [0, 1] },
          },
        },
      },
    ],
  });
}

/**
 * Precision-recall curves, a line per class named with its average precision. A class without
 * positive rows has no curve and is left out.
 *
 * @param y `[rows, classes]` row-major labels; an entry >= 0.5 is positive.
 * @param scores `[rows, classes]` row-major scores.
 * @param labels `[classes]` class names in column order.
 */
export async function precisionRecallSvg(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  labels: readonly string[],
): Promise<string> {
  const classes = labels.length;
  checkMatrix(y, scores, rows, classes);
  const names: string[] = [];
  const values = labels.flatMap((label, c) => {
    const column = (m: ArrayLike<number>) =>
      Float64Array.from({ length: rows }, (_, r) => m[r * classes + c]);
    const points = precisionRecallPoints(column(y), column(scores));
    if (points.length === 0) return [];
    const name = `${label} (AP ${areaUnderSteps(points).toFixed(3)})`;
    names.push(name);
    return points.map((p, order) => ({
      class: name,
      order,
      recall: p.recall,
      precision: p.precision,
    }));
  });

  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Precision-recall curves',
    width: WIDTH,
    height: WIDTH,
    data: { values },
    mark: { type: 'line', interpolate: 'step-before' },
    encoding: {
      x: { field: 'recall', type: 'quantitative', title: 'recall', scale: { domain: [0, 1] } },
      y: {
        field: 'precision',
        type: 'quantitative',
        title: 'precision',
        scale: { domain: [0, 1] },
      },
      color: {
        field: 'class',
        type: 'nominal',
        title: 'class',
        sort: names,
        scale: { scheme: names.length > 10 ? 'tableau20' : 'tableau10' },
        legend: { symbolLimit: 0, columns: Math.ceil(names.length / 30) },
      },
      order: { field: 'order', type: 'quantitative' },
    },
  });
}

/**
 * The confusion matrix of top-1 predictions over single-label rows (see {@link confusionMatrix}),
 * as a heatmap with the count in each cell.
 *
 * @param y `[rows, classes]` row-major labels.
 * @param scores `[rows, classes]` row-major scores.
 * @param labels `[classes]` class names in column order.
 */
export async function confusionSvg(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  labels: readonly string[],
): Promise<string> {
  const matrix = confusionMatrix(y, scores, rows, labels.length);
  const values = matrix.counts.flatMap((row, t) =>
    row.map((count, p) => ({ truth: labels[t], predicted: labels[p], count })),
  );
  const highest = Math.max(1, ...values.map((v) => v.count));
  const cell = { step: Math.max(14, Math.min(40, Math.floor(600 / Math.max(1, labels.length)))) };

  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Confusion matrix (top-1, ${matrix.rows} single-label rows)`,
    width: cell,
    height: cell,
    data: { values },
    encoding: {
      x: { field: 'predicted', type: 'nominal', title: 'predicted class', sort: [...labels] },
      y: { field: 'truth', type: 'nominal', title: 'true class', sort: [...labels] },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: 'count',
            type: 'quantitative',
            title: 'rows',
            scale: { scheme: 'blues', domain: [0, highest] },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: {
            condition: { test: `datum.count > ${highest / 2}`, value: 'white' },
            value: 'black',
          },
        },
      },
    ],
  });
}

/** Sum of (R_n - R_n-1) * P_n over the curve: the average precision. */
function areaUnderSteps(points: readonly PrecisionRecallPoint[]): number {
  let area = 0;
  for (let i = 1; i < points.length; i++) {
    area += (points[i].recall - points[i - 1].recall) * points[i].precision;
  }
  return area;
}

function checkMatrix(
  y: ArrayLike<number>,
  scores: ArrayLike<number>,
  rows: number,
  classes: number,
): void {
  if (!Number.isInteger(rows) || rows < 0)
    throw new RangeError(`rows: expected an integer >= 0, got ${rows}`);
  if (y.length !== rows * classes || scores.length !== rows * classes) {
    throw new RangeError(
      `plots: expected ${rows} rows x ${classes} classes = ${rows * classes} labels and scores, ` +
        `got ${y.length} labels and ${scores.length} scores`,
    );
  }
}
