import { createHash } from 'crypto';
import { stat } from 'fs/promises';
import { homedir } from 'os';
import { basename, extname, join } from 'path';
import { EmbeddingCache } from '../audio/cache';
import { EmbedderSettings, createExtractor } from '../audio/embedder';
import { Extractor } from '../audio/extractor';
import { AudioSettings, DEFAULT_AUDIO, checkAudioSettings } from '../audio/recordings';
import { Random } from '../random';
import { DataSet, EmbeddingInfo, Part, Source, copyYielding, createDataSet } from './dataset';
import { featureOrder, reorderColumns } from './features';
import { isEmbeddingsFile, readEmbeddingsFolder, readEmbeddingsText } from './embeddings';
import { classList, encodeLabels } from './labels';
import { readTrainingCache } from './npz';
import { RecordingsReport, holdsRecordings, readRecordingsFolder } from './recordings';
import { splitParts } from './split';
import { RawRows, TableOptions, readTable } from './table';

/** How to read a path: `auto` decides from the path (folder, `.npz`, else table). */
export const DATA_FORMATS = ['auto', 'folder', 'table', 'npz'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

export interface LoadOptions extends Partial<TableOptions>, EmbedderSettings {
  /** How the data (and the test data) is read; default `auto`. */
  format?: DataFormat;
  /** Share of each class that goes to validation; default 0.2. 0 = no validation part. */
  validationSplit?: number;
  /** Seed of the split and of every later random choice; default 42. */
  seed?: number;
  /** A separate test set, marked test and only ever evaluated. */
  testData?: string;
  /**
   * Share of the files (or of the rows without a file) marked test by a hash of their path:
   * the same files on every load, whatever else the folder gains, so that models trained one
   * after another are compared on rows none of them trained on. Default 0.
   */
  holdout?: number;
  /**
   * Encode labels against this class list (a saved model's) instead of deriving it from the
   * data: data for evaluating a model may hold fewer classes, even one; a label outside the list
   * is an error.
   */
  classes?: readonly string[];
  /** How recordings are cut and filtered; BirdNET-Analyzer's defaults where not given. */
  audio?: Partial<AudioSettings>;
  /** Folder of the embedding cache; default {@link defaultCacheDir}; false: no cache. */
  cacheDir?: string | false;
  /** One line per recording skipped, naming the file and why. */
  warn?: (line: string) => void;
  /** What a folder of recordings gave, per class and file; called once per folder read. */
  onRecordings?: (report: RecordingsReport, path: string) => void;
  /** Recordings done, of how many, in the folder being read. */
  progress?: (done: number, total: number) => void;
  /**
   * Called, before the first recording of a folder is read, with what its embeddings will
   * record as their making (the embedder and the audio settings); an error it throws refuses the
   * load before any file is decoded. Not called for tables or embeddings files.
   */
  checkEmbedding?: (embedding: EmbeddingInfo) => void;
}

/** The embedding cache's folder unless told otherwise: the user's cache folder. */
export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'custom-classifier', 'embeddings');
}

export const DEFAULT_SEED = 42;
export const DEFAULT_VALIDATION_SPLIT = 0.2;

/** Rows with their labels already encoded against a class list. */
interface Encoded {
  x: Float32Array;
  dim: number;
  y: Float32Array;
  labels: string[];
  sources: (Source | undefined)[];
  parts: Uint8Array;
  source: string;
  audio?: EmbeddingInfo['audio'];
  /** Names of the feature columns, for a table. */
  features?: string[];
  table?: EmbeddingInfo['table'];
}

/**
 * Loads labelled embeddings from a training folder, a CSV/TSV table or a BirdNET-Analyzer `.npz`
 * cache, and splits them once, with the seed, into train and validation (and test, from
 * `testData` or the cache's own test arrays).
 */
export async function loadDataSet(path: string, options: LoadOptions = {}): Promise<DataSet> {
  const seed = options.seed ?? DEFAULT_SEED;
  const fraction = options.validationSplit ?? DEFAULT_VALIDATION_SPLIT;
  const recordings = new Recordings(options);
  try {
    const data = await readLabelled(path, options, recordings, options.classes);

    if (options.testData !== undefined) {
      const test = await readLabelled(options.testData, options, recordings, data.labels);
      appendTest(data, test, options.testData);
    }

    holdOut(data, options.holdout ?? 0);
    return split(data, fraction, seed);
  } finally {
    recordings.dispose();
  }
}

/**
 * Reads folders of recordings for one load: the audio settings checked before any file is read,
 * the extractor made on first use and shared by the data and the test data.
 */
class Recordings {
  readonly settings: AudioSettings;
  private extractor: Promise<Extractor> | undefined;

  constructor(private readonly options: LoadOptions) {
    const given = Object.entries(options.audio ?? {}).filter(([, v]) => v !== undefined);
    this.settings = { ...DEFAULT_AUDIO, ...Object.fromEntries(given) };
    checkAudioSettings(this.settings);
  }

  async read(path: string, classes?: readonly string[]): Promise<Encoded> {
    this.extractor ??= createExtractor(this.options);
    const extractor = await this.extractor;
    checkAudioSettings(this.settings, extractor);
    const { mode, overlap, speed, fmin, fmax } = this.settings;
    const audio = {
      'Sample rate': extractor.sampleRate,
      'Segment seconds': extractor.segmentSeconds,
      'Crop mode': mode,
      Overlap: overlap,
      'Audio speed': speed,
      Fmin: fmin,
      Fmax: fmax,
    };
    this.options.checkEmbedding?.({ source: extractor.id, audio });
    const { cacheDir } = this.options;
    const { raw, report } = await readRecordingsFolder(path, {
      extractor,
      settings: this.settings,
      cache: cacheDir === false ? undefined : new EmbeddingCache(cacheDir ?? defaultCacheDir()),
      warn: this.options.warn,
      progress: this.options.progress,
    });
    this.options.onRecordings?.(report, path);
    return { ...encode(raw, path, extractor.id, classes), audio };
  }

  dispose(): void {
    void this.extractor?.then((e) => e.dispose()).catch(() => undefined);
  }
}

export interface LabelledRowsOptions {
  /** Share of each class that goes to validation; default 0.2. */
  validationSplit?: number;
  /** Seed of the split and of every later random choice; default 42. */
  seed?: number;
  /** Names the rows in errors, as a path does for a file. */
  where: string;
  /** What produced the embeddings, recorded as provenance. */
  source: string;
}

/**
 * A data set from labelled rows gathered elsewhere (e.g. one message per sample): the class list
 * from their labels, then the same split as {@link loadDataSet}.
 */
export function fromLabelledRows(raw: RawRows, options: LabelledRowsOptions): DataSet {
  const data = encode(raw, options.where, options.source);
  return split(
    data,
    options.validationSplit ?? DEFAULT_VALIDATION_SPLIT,
    options.seed ?? DEFAULT_SEED,
  );
}

/**
 * Marks test the rows of the files whose path hashes below `share` (a row without a file
 * hashes by its values). SHA-1 of the path, first 32 bits as a fraction of 2^32.
 */
function holdOut(data: Encoded, share: number): void {
  if (!(share >= 0 && share < 1)) {
    throw new Error(`holdout: expected a share of the files in [0, 1), got ${share}`);
  }
  if (share === 0) return;
  const rows = data.parts.length;
  for (let r = 0; r < rows; r++) {
    const file = data.sources[r]?.file;
    const key =
      file ?? Buffer.from(data.x.buffer, data.x.byteOffset + r * data.dim * 4, data.dim * 4);
    const hash = createHash('sha1').update(key).digest().readUInt32BE(0) / 2 ** 32;
    if (hash < share) data.parts[r] = Part.test;
  }
}

function split(data: Encoded, fraction: number, seed: number): DataSet {
  const parts = splitParts(data.y, data.labels.length, data.sources, data.parts, {
    fraction,
    random: new Random(seed).derive('split'),
  });
  return createDataSet({
    ...data,
    parts,
    embedding: {
      source: data.source,
      ...(data.audio === undefined ? {} : { audio: data.audio }),
      ...(data.features === undefined ? {} : { features: data.features }),
      ...(data.table === undefined ? {} : { table: data.table }),
    },
    seed,
    settings: { 'Validation split': fraction, Seed: seed },
  });
}

/**
 * @param classes the training class list, when reading a test set: its rows are encoded against
 *   it, so a test set may hold fewer classes than training (even one) without being refused
 */
async function readLabelled(
  path: string,
  options: LoadOptions,
  recordings: Recordings,
  classes?: readonly string[],
): Promise<Encoded> {
  const info = await stat(path).catch(() => {
    throw new Error(`${path}: no such file or folder`);
  });
  const format = options.format ?? 'auto';
  checkFormat(path, format, info.isDirectory());
  if (info.isDirectory()) {
    if (await holdsRecordings(path)) return recordings.read(path, classes);
    const source = `embeddings:${basename(path)}`;
    return encode(await readEmbeddingsFolder(path), path, source, classes);
  }

  const ext = extname(path).toLowerCase();
  if (format === 'npz' || (format === 'auto' && ext === '.npz')) return readCache(path);
  const table = format === 'table' || isTablePath(path);
  if (table || options.labelColumn !== undefined) {
    if (options.labelColumn === undefined) {
      throw new Error(`${path}: a table needs a label column (option label-column)`);
    }
    const source = `table:${basename(path)}`;
    return encode(await readTable(path, options as TableOptions), path, source, classes);
  }
  if (isEmbeddingsFile(basename(path))) {
    await readEmbeddingsText(path);
    throw new Error(
      `${path}: an embeddings file carries no labels; put such files in one folder per class ` +
        `and load the folder`,
    );
  }
  throw new Error(
    `${path}: unknown data format; expected a folder of class folders, .csv, .tsv or .npz`,
  );
}

/** Whether a path names a table by its extension (.csv, .tsv, .tab). */
export function isTablePath(path: string): boolean {
  return ['.csv', '.tsv', '.tab'].includes(extname(path).toLowerCase());
}

/** What each format expects to find at the path, as errors say it. */
const FORMAT_EXPECTS: Record<Exclude<DataFormat, 'auto'>, string> = {
  folder: 'a folder of class folders',
  table: 'a table',
  npz: 'an .npz file',
};

function checkFormat(path: string, format: string, isFolder: boolean): void {
  if (!(DATA_FORMATS as readonly string[]).includes(format)) {
    throw new Error(`${path}: format: expected one of ${DATA_FORMATS.join(', ')}, got "${format}"`);
  }
  if (format === 'auto' || (format === 'folder') === isFolder) return;
  throw new Error(
    `${path}: format "${format}" expects ` +
      `${FORMAT_EXPECTS[format as keyof typeof FORMAT_EXPECTS]}, ` +
      `found a ${isFolder ? 'folder' : 'file'}`,
  );
}

/** Separators a table's label column may join several classes with. */
const LABEL_SEPARATORS = [',', ';', '|', '+', ' '];

/** A hint for a label that reads as training classes joined by another separator, or ''. */
function separatorHint(label: string, index: ReadonlyMap<string, number>): string {
  for (const separator of LABEL_SEPARATORS) {
    const parts = label.split(separator).map((part) => part.trim());
    if (parts.length > 1 && parts.every((part) => index.has(part))) {
      const hint = `set the label separator to "${separator}"`;
      return `; it reads as classes joined by "${separator}": ${hint}`;
    }
  }
  return '';
}

function encode(raw: RawRows, path: string, source: string, classes?: readonly string[]): Encoded {
  const labels = classes === undefined ? classList(raw.labels, path) : [...classes];
  const index = new Map(labels.map((l, i) => [l, i]));
  for (const label of raw.labels.flatMap((p) => [...p.positives, ...p.negatives])) {
    if (!index.has(label)) {
      throw new Error(
        `${path}: label "${label}" is not a training class of the model (${labels.join(', ')})` +
          separatorHint(label, index),
      );
    }
  }
  const y = new Float32Array(raw.labels.length * labels.length);
  raw.labels.forEach((parsed, r) => encodeLabels(parsed, index, y, r * labels.length));
  return {
    x: raw.x,
    dim: raw.dim,
    y,
    labels,
    sources: raw.sources,
    parts: new Uint8Array(raw.labels.length),
    source,
    ...(raw.features === undefined ? {} : { features: raw.features }),
    ...(raw.table === undefined ? {} : { table: raw.table }),
  };
}

async function readCache(path: string): Promise<Encoded> {
  const cache = await readTrainingCache(path);
  const trainRows = cache.xTrain.length / cache.dim;
  const testRows = cache.xTest === undefined ? 0 : cache.xTest.length / cache.dim;
  let x = cache.xTrain;
  let y = cache.yTrain;
  if (cache.xTest !== undefined && cache.yTest !== undefined) {
    // The test rows follow the training rows in one array.
    x = await copyYielding(cache.xTrain, new Float32Array((trainRows + testRows) * cache.dim));
    x.set(cache.xTest, cache.xTrain.length);
    y = new Float32Array((trainRows + testRows) * cache.labels.length);
    y.set(cache.yTrain);
    y.set(cache.yTest, cache.yTrain.length);
  }
  const parts = new Uint8Array(trainRows + testRows).fill(Part.test, trainRows);
  return {
    x,
    dim: cache.dim,
    y,
    labels: cache.labels,
    sources: new Array<Source | undefined>(trainRows + testRows).fill(undefined),
    parts,
    source: `birdnet-cache:${basename(path)}`,
  };
}

/** Appends a test set's rows, re-ordering its label columns to the training class list. */
function appendTest(data: Encoded, test: Encoded, path: string): void {
  // A test table may list the same columns in another order: they are matched by name (and a
  // missing or extra one named) before any count.
  const order = featureOrder(test.features, data.features, path);
  if (test.dim !== data.dim) {
    throw new Error(`${path}: test embeddings have ${test.dim} values, training has ${data.dim}`);
  }
  if (order !== undefined) test.x = reorderColumns(test.x, test.dim, order);
  const k = data.labels.length;
  const map = test.labels.map((label) => {
    const i = data.labels.indexOf(label);
    if (i < 0) throw new Error(`${path}: test label "${label}" is not a training class`);
    return i;
  });
  const rows = test.x.length / test.dim;
  const y = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    map.forEach((c, j) => (y[r * k + c] = test.y[r * test.labels.length + j]));
  }
  const before = data.x.length / data.dim;
  data.x = concat(data.x, test.x);
  data.y = concat(data.y, y);
  data.sources = [...data.sources, ...test.sources];
  const parts = new Uint8Array(before + rows).fill(Part.test, before);
  parts.set(data.parts);
  data.parts = parts;
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
