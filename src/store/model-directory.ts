import * as tf from '@tensorflow/tfjs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'fs/promises';
import { basename, dirname, join } from 'path';
import { DataSetSummary, EmbeddingInfo } from '../dataset/dataset';
import { EvaluationReport } from '../evaluate/metrics';
import { CHART_FILES } from '../evaluate/plots';
import { reportToCsv, reportToJson } from '../evaluate/report';
import { EpochStats } from '../train/trainer';
import { MODEL_JSON, WEIGHTS_BIN, readLayersModel, writeLayersModel } from './model-files';

export const LABELS_FILE = 'labels.txt';
export const HYPERPARAMETERS_FILE = 'hyperparameters.csv';
export const SAMPLES_FILE = 'samples.csv';
export const HISTORY_FILE = 'history.csv';
export const EVALUATION_CSV = 'evaluation.csv';
export const EVALUATION_JSON = 'evaluation.json';
export const PROVENANCE_FILE = 'provenance.json';

/** Where a model came from: enough to know what it may be given to score. */
export interface Provenance {
  package: string;
  packageVersion: string;
  backend: string;
  createdAt: string;
  embedding: EmbeddingInfo & { dim: number };
  seed: number;
  labels: string[];
  /** Per class, the F1-best threshold on the validation part (0.5 where it had no positives). */
  thresholds: Record<string, number>;
  /** What is done to an embedding before the model sees it. */
  preprocessing: 'none';
  stopReason: string;
  bestEpoch: number;
}

export interface ModelRecord {
  model: tf.LayersModel;
  labels: readonly string[];
  hyperparameters: Readonly<Record<string, string | number | boolean>>;
  samples: DataSetSummary;
  history: readonly EpochStats[];
  /** Evaluation per part that had rows, e.g. validation and test. */
  evaluation: Readonly<Record<string, EvaluationReport | undefined>>;
  provenance: Provenance;
}

/**
 * Saves a model directory that loads without this package: TF.js layers files, `labels.txt` (one
 * label per line, output order), hyperparameters as `Parameter,Value` rows, samples per label,
 * the training history, the evaluation (of the test part, else the validation part) as CSV and
 * of every evaluated part as JSON, and `provenance.json`.
 *
 * Everything is written into a temporary sibling and renamed into place, so a failed save never
 * leaves half a model and never replaces a good one. When `signal` is aborted before the rename,
 * the temporary folder is removed, `dir` is left as it was and the promise rejects.
 */
export async function saveModelDirectory(
  dir: string,
  record: ModelRecord,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  await checkModelTarget(dir);
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const temp = await mkdtemp(join(parent, `.${basename(dir)}.saving-`));
  try {
    // mkdtemp makes a private folder; a model folder is as readable as any other the user makes.
    await chmod(temp, 0o777 & ~process.umask());
    await writeLayersModel(record.model, temp);
    await pauseForTests();
    await writeFile(join(temp, LABELS_FILE), record.labels.join('\n') + '\n');
    await writeFile(join(temp, HYPERPARAMETERS_FILE), toParameterCsv(record.hyperparameters));
    await writeFile(join(temp, SAMPLES_FILE), toSamplesCsv(record.samples));
    await writeFile(join(temp, HISTORY_FILE), toHistoryCsv(record.history));
    const primary = record.evaluation.test ?? record.evaluation.validation;
    if (primary !== undefined) await writeFile(join(temp, EVALUATION_CSV), reportToCsv(primary));
    const json = Object.entries(record.evaluation).flatMap(([part, r]) =>
      r === undefined ? [] : [[part, reportToJson(r)]],
    );
    await writeFile(join(temp, EVALUATION_JSON), JSON.stringify(Object.fromEntries(json), null, 2));
    await writeFile(join(temp, PROVENANCE_FILE), JSON.stringify(record.provenance, null, 2));
    await replaceDirectory(temp, dir, options.signal);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Holds a save half-way, with the weights written and the rest not, for as many ms as
 * `CUSTOM_CLASSIFIER_TEST_PAUSE_SAVE_MS` says: tests kill the process there to show that a save
 * that never finished is never taken for a model.
 */
async function pauseForTests(): Promise<void> {
  const ms = Number(process.env.CUSTOM_CLASSIFIER_TEST_PAUSE_SAVE_MS ?? 0);
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
}

/** The files a model directory may hold: what a save writes, and the evaluator's charts. */
const MODEL_FOLDER_FILES = new Set([
  MODEL_JSON,
  WEIGHTS_BIN,
  LABELS_FILE,
  HYPERPARAMETERS_FILE,
  SAMPLES_FILE,
  HISTORY_FILE,
  EVALUATION_CSV,
  EVALUATION_JSON,
  PROVENANCE_FILE,
  ...Object.values(CHART_FILES),
]);

/**
 * Refuses to save over anything but an earlier model: `dir` may be missing, an empty folder, or a
 * folder holding `model.json`, `labels.txt` and no file that a model directory does not hold,
 * since replacing the model replaces the folder. A mistyped output path must never delete files.
 */
export async function checkModelTarget(dir: string): Promise<void> {
  const info = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new Error(`${dir}: cannot be a model directory: ${err.message}`);
  });
  if (info === undefined) return;
  if (!info.isDirectory()) {
    throw new Error(`${dir}: exists and is not a folder; refusing to replace it with a model`);
  }
  const entries = await readdir(dir);
  if (entries.length === 0) return;
  if (!(entries.includes(MODEL_JSON) && entries.includes(LABELS_FILE))) {
    throw new Error(
      `${dir}: the folder is not empty and holds no model (no ${MODEL_JSON} and ${LABELS_FILE}); ` +
        `refusing to replace it: choose another model directory`,
    );
  }
  const others = entries.filter((name) => !MODEL_FOLDER_FILES.has(name));
  if (others.length > 0) {
    throw new Error(
      `${dir}: holds a model and also ${others.join(', ')}, which a new model would delete; ` +
        `move ${others.length === 1 ? 'it' : 'them'} elsewhere or choose another model directory`,
    );
  }
}

/** Moves `temp` to `dir`; an existing `dir` is moved aside first and removed only afterwards. */
async function replaceDirectory(temp: string, dir: string, signal?: AbortSignal): Promise<void> {
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  // The last moment a cancelled save can still leave `dir` untouched: no await from here on
  // until the first rename has been issued.
  signal?.throwIfAborted();
  if (!exists) {
    await rename(temp, dir);
    return;
  }
  const old = `${temp}.previous`;
  await rename(dir, old);
  try {
    await rename(temp, dir);
  } catch (err) {
    await rename(old, dir);
    throw err;
  }
  await rm(old, { recursive: true, force: true });
}

export interface LoadedModel {
  model: tf.LayersModel;
  labels: string[];
  provenance: Provenance;
  dim: number;
}

/** Loads a saved model directory and checks that its files agree. */
export async function loadModelDirectory(dir: string): Promise<LoadedModel> {
  const model = await readLayersModel(dir);
  try {
    const labels = (await readFile(join(dir, LABELS_FILE), 'utf8')).split(/\r?\n/).filter(Boolean);
    const provenance = JSON.parse(await readFile(join(dir, PROVENANCE_FILE), 'utf8')) as Provenance;
    const dim = model.inputs[0].shape[1] as number;
    const outputs = model.outputs[0].shape[1] as number;
    if (labels.length !== outputs) {
      throw new Error(
        `${join(dir, LABELS_FILE)}: ${labels.length} labels, but the model has ${outputs} outputs`,
      );
    }
    return { model, labels, provenance, dim };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

function csvCell(value: string | number | boolean | undefined): string {
  const text = value === undefined ? '' : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function toParameterCsv(parameters: Readonly<Record<string, string | number | boolean>>): string {
  const rows = Object.entries(parameters).map(([k, v]) => `${csvCell(k)},${csvCell(v)}`);
  return ['Parameter,Value', ...rows].join('\n') + '\n';
}

function toSamplesCsv(summary: DataSetSummary): string {
  const rows = Object.entries(summary.perClass).map(
    ([label, n]) => `${csvCell(label)},${n.train},${n.validation},${n.test},${n.synthetic}`,
  );
  return ['Label,Train,Validation,Test,Upsampled', ...rows].join('\n') + '\n';
}

function toHistoryCsv(history: readonly EpochStats[]): string {
  const header = 'Epoch,Loss,ValLoss,ValAUPRC,ValAUROC,LearningRate,Seconds,Best';
  const rows = history.map((e) =>
    [e.epoch, e.loss, e.valLoss, e.valAuprc, e.valAuroc, e.learningRate, e.seconds, e.best]
      .map((v) => csvCell(v))
      .join(','),
  );
  return [header, ...rows].join('\n') + '\n';
}
