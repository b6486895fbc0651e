import { setImmediate as nextTurn } from 'timers/promises';

/** Where a row of embeddings came from: a recording (or table) and a time span in seconds. */
export interface Source {
  readonly file: string;
  readonly start?: number;
  readonly end?: number;
}

/** The part of the data set a row belongs to, fixed once by the loader's split. */
export const Part = { train: 0, validation: 1, test: 2 } as const;
export type PartCode = (typeof Part)[keyof typeof Part];
export const PART_NAMES = ['train', 'validation', 'test'] as const;

/** What produced the embeddings; saved with the model as provenance. */
export interface EmbeddingInfo {
  /** Extractor or model name and version, e.g. `birdnet-2.4` or `table:Frogs_MFCCs.csv`. */
  readonly source: string;
  /** Audio settings used to make the embeddings, when they came from audio. */
  readonly audio?: Readonly<Record<string, string | number>>;
  /** Names of the feature columns, in order, when the embeddings came from a table. */
  readonly features?: readonly string[];
  /** The table's other columns as they were named when it was read, for a table. */
  readonly table?: TableColumns;
}

/** Which columns of a table hold the labels, recordings and times, and which are left out. */
export interface TableColumns {
  readonly labelColumn: string;
  readonly labelSeparator?: string;
  readonly fileColumn?: string;
  readonly startColumn?: string;
  readonly endColumn?: string;
  readonly ignoreColumns?: readonly string[];
  readonly delimiter?: string;
}

/**
 * Labelled embeddings, split into train / validation / test.
 *
 * Immutable by contract: every stage returns a new data set and never writes into the arrays of
 * the one it was given.
 */
export interface DataSet {
  /** `[rows, dim]` float32, row-major. */
  readonly x: Float32Array;
  /** `[rows, classes]` float32: 1 present, 0 absent, -1 negative sample, fractions after mixup. */
  readonly y: Float32Array;
  readonly rows: number;
  readonly dim: number;
  /** Class names in model output order. */
  readonly labels: readonly string[];
  /** Per row: its recording, or undefined when unknown. */
  readonly sources: readonly (Source | undefined)[];
  /** Per row: a {@link Part} code. */
  readonly parts: Uint8Array;
  /** Per row: 1 when a stage made it (upsampling), 0 when it was loaded. */
  readonly synthetic: Uint8Array;
  readonly embedding: EmbeddingInfo;
  /** Seed of the split; later stages derive their own random streams from it. */
  readonly seed: number;
  /**
   * Settings of the stages that made this data set, named as in `hyperparameters.csv`
   * (e.g. `Validation split`, `Upsampling ratio`), so a model records how its data was prepared.
   */
  readonly settings: Readonly<Record<string, string | number | boolean>>;
}

export interface DataSetInit {
  x: Float32Array;
  y: Float32Array;
  dim: number;
  labels: readonly string[];
  sources?: readonly (Source | undefined)[];
  parts?: Uint8Array;
  synthetic?: Uint8Array;
  embedding?: EmbeddingInfo;
  seed?: number;
  settings?: Readonly<Record<string, string | number | boolean>>;
}

/** Builds a data set and checks that its arrays agree in size. */
export function createDataSet(init: DataSetInit): DataSet {
  const classes = init.labels.length;
  if (!Number.isInteger(init.dim) || init.dim <= 0) {
    throw new Error(`dataset: dim must be a positive integer, got ${init.dim}`);
  }
  if (init.x.length % init.dim !== 0) {
    throw new Error(`dataset: x has ${init.x.length} values, not a multiple of dim ${init.dim}`);
  }
  const rows = init.x.length / init.dim;
  if (init.y.length !== rows * classes) {
    throw new Error(`dataset: y has ${init.y.length} values, expected ${rows} x ${classes}`);
  }
  const sources = init.sources ?? new Array<Source | undefined>(rows).fill(undefined);
  const parts = init.parts ?? new Uint8Array(rows);
  const synthetic = init.synthetic ?? new Uint8Array(rows);
  for (const [name, length] of [
    ['sources', sources.length],
    ['parts', parts.length],
    ['synthetic', synthetic.length],
  ] as const) {
    if (length !== rows)
      throw new Error(`dataset: ${name} has ${length} entries, expected ${rows}`);
  }
  return Object.freeze({
    x: init.x,
    y: init.y,
    rows,
    dim: init.dim,
    labels: Object.freeze([...init.labels]),
    sources: Object.freeze([...sources]),
    parts,
    synthetic,
    embedding: init.embedding ?? { source: 'unknown' },
    seed: init.seed ?? 0,
    settings: Object.freeze({ ...init.settings }),
  });
}

/** The same data set, recording further stage settings. */
export function withSettings(
  data: DataSet,
  settings: Readonly<Record<string, string | number | boolean>>,
): DataSet {
  return Object.freeze({ ...data, settings: Object.freeze({ ...data.settings, ...settings }) });
}

/** Row indices of one part, in order. */
export function rowsOf(data: DataSet, part: PartCode): number[] {
  const out: number[] = [];
  for (let i = 0; i < data.rows; i++) if (data.parts[i] === part) out.push(i);
  return out;
}

/** Bytes copied between two turns of the event loop by {@link copyYielding}: a few ms of work. */
const COPY_SLICE_BYTES = 16 * 1024 * 1024;

/**
 * `values` copied to the start of `into` (by default a new array), a slice at a time with the
 * event loop handed back between slices, so that copying a data set of hundreds of megabytes
 * does not hold up the rest of Node-RED.
 */
export async function copyYielding(
  values: Float32Array,
  into = new Float32Array(values.length),
): Promise<Float32Array> {
  const out = into;
  const slice = COPY_SLICE_BYTES / 4;
  for (let start = 0; start < values.length; start += slice) {
    out.set(values.subarray(start, start + slice), start);
    if (start + slice < values.length) await nextTurn();
  }
  return out;
}

/** Rows a few megabytes of which are copied between two turns of the event loop. */
const GATHER_BYTES = 8 * 1024 * 1024;

/**
 * The given rows' features and labels copied into arrays of their own, `[rows.length, dim]` and
 * `[rows.length, classes]`, handing the event loop back after every few megabytes.
 */
export async function gatherRows(
  data: DataSet,
  rows: readonly number[],
): Promise<{ x: Float32Array; y: Float32Array }> {
  const { dim } = data;
  const classes = data.labels.length;
  const x = new Float32Array(rows.length * dim);
  const y = new Float32Array(rows.length * classes);
  const slice = Math.max(1, Math.floor(GATHER_BYTES / 4 / (dim + classes)));
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    x.set(data.x.subarray(r * dim, (r + 1) * dim), i * dim);
    y.set(data.y.subarray(r * classes, (r + 1) * classes), i * classes);
    if ((i + 1) % slice === 0) await nextTurn();
  }
  return { x, y };
}

/** A new data set holding the given rows, in the given order. */
export function selectRows(data: DataSet, indices: readonly number[]): DataSet {
  const { dim } = data;
  const k = data.labels.length;
  const x = new Float32Array(indices.length * dim);
  const y = new Float32Array(indices.length * k);
  indices.forEach((r, i) => {
    x.set(data.x.subarray(r * dim, (r + 1) * dim), i * dim);
    y.set(data.y.subarray(r * k, (r + 1) * k), i * k);
  });
  return createDataSet({
    ...data,
    x,
    y,
    sources: indices.map((r) => data.sources[r]),
    parts: Uint8Array.from(indices, (r) => data.parts[r]),
    synthetic: Uint8Array.from(indices, (r) => data.synthetic[r]),
  });
}

/** A label counts a row as a sample of its class from this value up (smoothed 1 is 0.9). */
export const POSITIVE_LABEL = 0.5;

/** Row counts per part, and per class the rows that are samples of it. */
export interface DataSetSummary {
  rows: number;
  dim: number;
  classes: number;
  parts: Record<(typeof PART_NAMES)[number], number>;
  /**
   * Per class: loaded rows whose label is at least {@link POSITIVE_LABEL}, per part, and the
   * synthetic (upsampled) training rows of the class.
   */
  perClass: Record<string, Record<(typeof PART_NAMES)[number] | 'synthetic', number>>;
}

export function summarize(data: DataSet): DataSetSummary {
  const k = data.labels.length;
  const parts = { train: 0, validation: 0, test: 0 };
  const perClass: DataSetSummary['perClass'] = {};
  for (const label of data.labels) {
    perClass[label] = { train: 0, validation: 0, test: 0, synthetic: 0 };
  }
  for (let r = 0; r < data.rows; r++) {
    const part = PART_NAMES[data.parts[r]];
    parts[part]++;
    const column = data.synthetic[r] === 1 ? 'synthetic' : part;
    for (let c = 0; c < k; c++) {
      if (data.y[r * k + c] >= POSITIVE_LABEL) perClass[data.labels[c]][column]++;
    }
  }
  return { rows: data.rows, dim: data.dim, classes: k, parts, perClass };
}
