#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar } from 'cli-progress';
import * as tf from '@tensorflow/tfjs';
import { of, tap } from 'rxjs';
import { BUILT_IN_EMBEDDER } from './audio/embedder';
import { DEFAULT_INPUT_SECONDS, DEFAULT_SAMPLE_RATE } from './audio/model-extractor';
import { DEFAULT_AUDIO } from './audio/recordings';
import { CROP_MODES, CropMode } from './audio/segments';
import { UPSAMPLING_MODES } from './augment/upsample';
import { DataSet, summarize } from './dataset/dataset';
import { LoadOptions, isTablePath, loadDataSet } from './dataset/load';
import { writeSyntheticRecordings } from './audio/synthetic';
import { evaluate as evaluateScores } from './evaluate/metrics';
import { formatReportTable, reportToCsv } from './evaluate/report';
import { PACKAGE } from './package-info';
import { DEFAULT_SETTINGS, RunSettings, settingsTable } from './settings';
import { Provenance, checkModelTarget } from './store/model-directory';
import { evaluate, load, mixup, save, smooth, train, upsample } from './streams';
import { checkSameEmbedding, loadPredictor, scoreDataSet } from './streams/predict';
import { SavedEvent } from './streams/save';
import { BACKENDS, initBackend } from './train/backend';
import { NoValidationError } from './train/trainer';
import { stat, writeFile } from 'fs/promises';
import { dirname, join, resolve, sep } from 'path';

/** BirdNET-Analyzer's spellings of our options. */
const ALIASES: Record<string, string> = {
  '--i': '--data',
  '--input': '--data',
  '--o': '--out',
  '--output': '--out',
  '--val_split': '--validation-split',
  '--val-split': '--validation-split',
};

/** Rewrites BirdNET-Analyzer option spellings (`--batch_size`, `--i`) into ours. */
export function normalizeArgs(args: readonly string[]): string[] {
  return args.map((arg) => {
    if (!arg.startsWith('--')) return arg;
    const [name, ...value] = arg.split('=');
    const hyphenated = name.replace(/_/g, '-');
    const renamed = ALIASES[name] ?? ALIASES[hyphenated] ?? hyphenated;
    return value.length > 0 ? `${renamed}=${value.join('=')}` : renamed;
  });
}

function number(option: string, check: (v: number) => boolean, expected: string) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || !check(value)) {
      throw new InvalidArgumentError(`${option} expects ${expected}, got "${text}"`);
    }
    return value;
  };
}

const integer = (option: string, min: number) =>
  number(option, (v) => Number.isInteger(v) && v >= min, `an integer >= ${min}`);
const fraction = (option: string, upper: string) =>
  number(option, (v) => v >= 0 && (upper === '1]' ? v <= 1 : v < 1), `a number in [0, ${upper}`);

/** The data options' defaults, which `evaluate` takes only where the model has no value. */
const DATA_DEFAULTS = {
  labelSeparator: ',',
  cropMode: DEFAULT_AUDIO.mode,
  overlap: DEFAULT_AUDIO.overlap,
  fmin: DEFAULT_AUDIO.fmin,
  fmax: DEFAULT_AUDIO.fmax,
  audioSpeed: DEFAULT_AUDIO.speed,
  embedder: BUILT_IN_EMBEDDER,
};

/** `--delimiter` as typed: one character, or `\t` for a tab. */
function delimiterOption(text: string): string {
  const delimiter = text === '\\t' ? '\t' : text;
  if (delimiter.length !== 1) {
    throw new InvalidArgumentError(`--delimiter expects one character (or \\t), got "${text}"`);
  }
  return delimiter;
}

/**
 * The options that say how data is read. With `fromModel` (evaluate), the options that have a
 * default declare none: a value not given is the model's, else the default (see DATA_DEFAULTS).
 */
function dataOptions(command: Command, fromModel = false): Command {
  const d = fromModel ? undefined : DATA_DEFAULTS;
  const about = (text: string, value: unknown) => {
    if (!fromModel) return text;
    return value === undefined
      ? `${text} (default: the model's)`
      : `${text} (default: the model's, else ${JSON.stringify(value)})`;
  };
  const crop = new Option(
    '--crop-mode <mode>',
    about('how recordings are cut into 3 s segments', DATA_DEFAULTS.cropMode),
  ).choices([...CROP_MODES]);
  return command
    .option('--label-column <name>', about('label column of a CSV/TSV table', undefined))
    .option(
      '--label-separator <sep>',
      about('separator of several labels in one cell', DATA_DEFAULTS.labelSeparator),
      d?.labelSeparator,
    )
    .option(
      '--file-column <name>',
      about('column naming the recording of each row (groups the split)', undefined),
    )
    .option('--start-column <name>', about("column with each row's start time, seconds", undefined))
    .option('--end-column <name>', about("column with each row's end time, seconds", undefined))
    .option(
      '--ignore-columns <names>',
      about('comma-separated columns that are not features', undefined),
      (v) => v.split(',').map((s) => s.trim()),
    )
    .option(
      '--delimiter <char>',
      fromModel
        ? "field delimiter of the table, \\t for a tab (default: the model's, else from the header)"
        : 'field delimiter of the table, \\t for a tab (default: from the header)',
      delimiterOption,
    )
    .addOption(d === undefined ? crop : crop.default(d.cropMode))
    .option(
      '--overlap <s>',
      about(
        'seconds shared by neighbouring segments (crop modes segments and smart)',
        DATA_DEFAULTS.overlap,
      ),
      number('--overlap', (v) => v >= 0 && v < 3, 'seconds in [0, 3)'),
      d?.overlap,
    )
    .option(
      '--fmin <hz>',
      about('lower band limit, Hz (0 = no high-pass)', DATA_DEFAULTS.fmin),
      number('--fmin', (v) => v >= 0, 'a number of Hz >= 0'),
      d?.fmin,
    )
    .option(
      '--fmax <hz>',
      about('upper band limit, Hz (15000 = no low-pass)', DATA_DEFAULTS.fmax),
      number('--fmax', (v) => v > 0, 'a number of Hz > 0'),
      d?.fmax,
    )
    .option(
      '--audio-speed <s>',
      about(
        'read recordings as if played at this speed (< 1 slows down and lowers the pitch)',
        DATA_DEFAULTS.audioSpeed,
      ),
      number('--audio-speed', (v) => v > 0, 'a number > 0'),
      d?.audioSpeed,
    )
    .option(
      '--embedder <name>',
      `${BUILT_IN_EMBEDDER} (built in) or the model.json of a TF.js model`,
      DATA_DEFAULTS.embedder,
    )
    .option(
      '--model-sample-rate <hz>',
      `sample rate the embedding model takes (default: ${DEFAULT_SAMPLE_RATE})`,
      integer('--model-sample-rate', 1),
    )
    .option(
      '--model-input-seconds <s>',
      `segment length the embedding model takes (default: ${DEFAULT_INPUT_SECONDS})`,
      number('--model-input-seconds', (v) => v > 0, 'a number of seconds > 0'),
    )
    .option('--model-output <name>', "the embedding model's layer or node to take as embedding")
    .option('--custom-layers <module>', "a module that registers the model's custom layers")
    .option('--cache <dir>', 'embedding cache folder (default: the user cache folder)')
    .option('--no-cache', 'embed every recording, keep no cache')
    .addOption(
      new Option('--backend <name>', 'TF.js backend (default: the fastest that loads)').choices([
        'auto',
        ...BACKENDS,
      ]),
    );
}

function trainCommand(): Command {
  const d = DEFAULT_SETTINGS;
  const command = new Command('train')
    .description('train a classifier on labelled embeddings and save it as a model directory')
    .requiredOption(
      '--data <path>',
      'class folders of recordings or embeddings files, a CSV/TSV table or a .npz cache (also --i)',
    )
    .requiredOption('--out <dir>', 'model directory to write (also --o)')
    .option('--test-data <path>', 'a separate test set, evaluated only')
    .option('--epochs <n>', 'maximum epochs', integer('--epochs', 1), d.epochs)
    .option('--batch-size <n>', 'rows per batch', integer('--batch-size', 1), d.batchSize)
    .option(
      '--learning-rate <r>',
      'peak learning rate',
      number('--learning-rate', (v) => v > 0 && v < 10, 'a number in (0, 10)'),
      d.learningRate,
    )
    .option(
      '--validation-split <f>',
      'share of each class held out for validation (also --val_split)',
      fraction('--validation-split', '1)'),
      d.validationSplit,
    )
    .option(
      '--hidden-units <n>',
      'hidden layer size; 0 = a single layer',
      integer('--hidden-units', 0),
      d.hiddenUnits,
    )
    .option('--dropout <r>', 'dropout rate', fraction('--dropout', '1)'), d.dropout)
    .option('--focal-loss', 'use focal loss instead of cross-entropy', false)
    .option(
      '--focal-loss-gamma <g>',
      'focal loss gamma',
      number('--focal-loss-gamma', (v) => v >= 0, 'a number >= 0'),
      d.focalGamma,
    )
    .option(
      '--focal-loss-alpha <a>',
      'focal loss alpha',
      fraction('--focal-loss-alpha', '1]'),
      d.focalAlpha,
    )
    .option('--label-smoothing', 'smooth the training labels', false)
    .option(
      '--label-smoothing-alpha <a>',
      'label smoothing alpha',
      fraction('--label-smoothing-alpha', '1)'),
      d.labelSmoothingAlpha,
    )
    .option('--mixup', 'blend a quarter of the labelled training rows', false)
    .option(
      '--upsampling-ratio <r>',
      'raise each class to this share of the largest; 0 = off',
      fraction('--upsampling-ratio', '1]'),
      d.upsamplingRatio,
    )
    .addOption(
      new Option('--upsampling-mode <mode>', 'how new rows are made')
        .choices([...UPSAMPLING_MODES])
        .default(d.upsamplingMode),
    )
    .option(
      '--l2 <f>',
      'L2 penalty factor on Dense kernels',
      number('--l2', (v) => v >= 0, 'a number >= 0'),
      d.l2,
    )
    .option(
      '--weight-decay <f>',
      'AdamW weight decay',
      number('--weight-decay', (v) => v >= 0, 'a number >= 0'),
      d.weightDecay,
    )
    .option('--seed <n>', 'seed of every random choice', integer('--seed', 0), d.seed)
    .option(
      '--allow-no-validation',
      'train when there is no validation part (validation split 0): all epochs run, the last ' +
        'weights are kept and every threshold is 0.5',
      false,
    )
    .option('--quiet', 'no progress output (the results are still printed)');
  return dataOptions(command).action(async (opts: TrainArgs) => {
    await runTrain(opts);
  });
}

interface CommonArgs {
  data: string;
  labelColumn?: string;
  labelSeparator: string;
  fileColumn?: string;
  startColumn?: string;
  endColumn?: string;
  ignoreColumns?: string[];
  delimiter?: string;
  cropMode: CropMode;
  overlap: number;
  fmin: number;
  fmax: number;
  audioSpeed: number;
  embedder: string;
  modelSampleRate?: number;
  modelInputSeconds?: number;
  modelOutput?: string;
  customLayers?: string;
  /** A folder; true when not given (commander's default with --no-cache); false after it. */
  cache?: string | boolean;
  backend?: (typeof BACKENDS)[number] | 'auto';
  quiet?: boolean;
}

interface TrainArgs extends CommonArgs {
  out: string;
  testData?: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  validationSplit: number;
  hiddenUnits: number;
  dropout: number;
  focalLoss: boolean;
  focalLossGamma: number;
  focalLossAlpha: number;
  labelSmoothing: boolean;
  labelSmoothingAlpha: number;
  mixup: boolean;
  upsamplingRatio: number;
  upsamplingMode: RunSettings['upsamplingMode'];
  l2: number;
  weightDecay: number;
  seed: number;
  allowNoValidation: boolean;
}

function loadOptions(a: CommonArgs): LoadOptions {
  return {
    labelColumn: a.labelColumn,
    labelSeparator: a.labelSeparator,
    fileColumn: a.fileColumn,
    startColumn: a.startColumn,
    endColumn: a.endColumn,
    ignoreColumns: a.ignoreColumns,
    delimiter: a.delimiter,
    audio: {
      mode: a.cropMode,
      overlap: a.overlap,
      fmin: a.fmin,
      fmax: a.fmax,
      speed: a.audioSpeed,
    },
    embedder: a.embedder,
    modelSampleRate: a.modelSampleRate,
    modelInputSeconds: a.modelInputSeconds,
    modelOutput: a.modelOutput,
    customLayers: a.customLayers,
    cacheDir: a.cache === true ? undefined : a.cache,
    warn: (line) => log(`warning: ${line}`),
    onRecordings: (r, path) => {
      if (a.quiet) return;
      log(
        `${path}: ${r.files} recordings (${r.embedded} embedded, ${r.cached} from the cache), ` +
          `${r.segments} segments; ${r.nothing.length} gave nothing (${r.skipped} skipped)`,
      );
      for (const [folder, c] of Object.entries(r.perClass)) {
        log(`  ${folder}: ${c.files} files, ${c.segments} segments`);
      }
      for (const n of r.nothing) log(`  no rows from ${n.file}: ${n.reason}`);
    },
  };
}

function settingsOf(a: TrainArgs): RunSettings {
  return {
    ...DEFAULT_SETTINGS,
    epochs: a.epochs,
    batchSize: a.batchSize,
    learningRate: a.learningRate,
    validationSplit: a.validationSplit,
    hiddenUnits: a.hiddenUnits,
    dropout: a.dropout,
    loss: a.focalLoss ? 'focal' : 'crossentropy',
    focalGamma: a.focalLossGamma,
    focalAlpha: a.focalLossAlpha,
    labelSmoothing: a.labelSmoothing,
    labelSmoothingAlpha: a.labelSmoothingAlpha,
    mixup: a.mixup,
    upsamplingRatio: a.upsamplingRatio,
    upsamplingMode: a.upsamplingMode,
    l2: a.l2,
    weightDecay: a.weightDecay,
    seed: a.seed,
    allowNoValidation: a.allowNoValidation,
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** A run the user ended with Ctrl-C. */
class Interrupted extends Error {}

function describe(data: DataSet): string {
  const s = summarize(data);
  return (
    `data set: ${s.rows} rows x ${s.dim} values, ${s.classes} classes; ` +
    `train ${s.parts.train}, validation ${s.parts.validation}, test ${s.parts.test}`
  );
}

/** Trains, evaluates and saves; resolves with the saved result (its model already disposed). */
export async function runTrain(a: TrainArgs): Promise<SavedResult> {
  const backend = await initBackend({ prefer: a.backend, log: a.quiet ? undefined : log });
  const s = settingsOf(a);
  await checkModelTarget(a.out);
  const bar = !a.quiet && process.stderr.isTTY ? progressBar(s.epochs) : undefined;
  let saved: SavedResult | undefined;
  const run$ = of(a.data).pipe(
    load({
      ...loadOptions(a),
      seed: s.seed,
      validationSplit: s.validationSplit,
      testData: a.testData,
    }),
    tap((data) => a.quiet || log(describe(data))),
    upsample({ ratio: s.upsamplingRatio, mode: s.upsamplingMode }),
    mixup(s.mixup),
    smooth(s.labelSmoothing, s.labelSmoothingAlpha),
    tap((data) => a.quiet || log(`after augmentation: ${describe(data)}`)),
    train(s),
    tap((e) => {
      if (e.type !== 'epoch' || a.quiet) return;
      if (bar) bar.update(e.epoch, epochPayload(e));
      else log(epochLine(e));
    }),
    evaluate(),
    save(a.out, settingsTable(s, backend)),
    tap((e) => {
      if (e.type === 'result') saved = e;
    }),
  );

  let onInterrupt: () => void = () => undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const subscription = run$.subscribe({ error: reject, complete: resolve });
      onInterrupt = () => {
        // Cancels the run: the trainer stops at the next batch; nothing has been saved yet.
        subscription.unsubscribe();
        reject(new Interrupted('interrupted: training cancelled, nothing saved'));
      };
      process.on('SIGINT', onInterrupt);
    });
  } catch (err) {
    if (err instanceof NoValidationError) {
      throw new NoValidationError(err.split, 'pass --allow-no-validation');
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    bar?.stop();
    saved?.result.model.dispose();
  }
  if (saved === undefined) throw new Error('training produced no model');
  report(saved, a.quiet === true);
  return saved;
}

function progressBar(epochs: number): SingleBar {
  const bar = new SingleBar({
    format: 'epoch {value}/{total} [{bar}] loss {loss} val_loss {valLoss} AUPRC {auprc} {seconds}s',
    stream: process.stderr,
    hideCursor: true,
  });
  bar.start(epochs, 0, { loss: '-', valLoss: '-', auprc: '-', seconds: '-' });
  return bar;
}

type EpochEvent = Extract<SavedEvent, { type: 'epoch' }>;
type SavedResult = Extract<SavedEvent, { type: 'result' }>;

function epochPayload(e: EpochEvent) {
  return {
    loss: e.loss.toFixed(4),
    valLoss: e.valLoss?.toFixed(4) ?? '-',
    auprc: e.valAuprc?.toFixed(4) ?? '-',
    seconds: e.seconds.toFixed(1),
  };
}

function epochLine(e: EpochEvent): string {
  const p = epochPayload(e);
  return (
    `epoch ${e.epoch}/${e.epochs} loss ${p.loss} val_loss ${p.valLoss} val_AUPRC ${p.auprc} ` +
    `lr ${e.learningRate.toExponential(2)} ${p.seconds}s${e.best ? ' *' : ''}`
  );
}

/** The results on stdout, and how training ended on stderr unless `quiet`. */
function report(saved: SavedResult, quiet: boolean): void {
  const { result, evaluation } = saved;
  if (!quiet) log(`${result.stopReason}; kept the weights of epoch ${result.bestEpoch}`);
  const sections: string[] = [];
  for (const [part, r] of Object.entries(evaluation.reports)) {
    if (r === undefined) continue;
    const top1 = r.top1 === undefined ? '' : `top-1 accuracy: ${r.top1.toFixed(4)}\n`;
    sections.push(`${part} (${r.rows} rows)\n${formatReportTable(r)}\n${top1}`);
    for (const w of r.warnings) log(`warning: ${w}`);
  }
  sections.push(`model saved: ${saved.dir}\n`);
  process.stdout.write(sections.join('\n'));
}

interface EvaluateArgs extends CommonArgs {
  model: string;
  out?: string;
}

function evaluateCommand(): Command {
  const command = new Command('evaluate')
    .description(
      'score labelled embeddings with a saved model and report per-class metrics; the table ' +
        "and audio options left out take the model's values (its provenance.json)",
    )
    .requiredOption('--model <dir>', 'a model directory written by train')
    .requiredOption('--data <path>', 'labelled embeddings, as for train (also --i)')
    .option('--out <file>', 'also write the report as CSV');
  return dataOptions(command, true).action(async (opts: EvaluateArgs, cmd: Command) =>
    runEvaluate(opts, (name) => {
      const source = cmd.getOptionValueSource(name);
      return source !== undefined && source !== 'default';
    }),
  );
}

/**
 * Refuses a report path that would overwrite a file of the model being evaluated, that is a
 * folder, or whose folder does not exist, before any work is done.
 */
async function checkReportTarget(out: string, modelDir: string): Promise<void> {
  const target = resolve(out);
  const model = resolve(modelDir);
  if (target === model || target.startsWith(model + sep)) {
    throw new Error(
      `--out ${out}: inside the model directory ${modelDir}; write the report elsewhere`,
    );
  }
  const info = await stat(target).catch(() => undefined);
  if (info?.isDirectory())
    throw new Error(`--out ${out}: a folder; expected a file name for the CSV report`);
  const folder = await stat(dirname(target)).catch(() => undefined);
  if (!folder?.isDirectory()) {
    throw new Error(`--out ${out}: the folder ${dirname(out)} does not exist`);
  }
}

/** The audio options of the command line, by the names `provenance.json` gives them. */
const AUDIO_OPTIONS: { key: keyof CommonArgs; provenance: string }[] = [
  { key: 'cropMode', provenance: 'Crop mode' },
  { key: 'overlap', provenance: 'Overlap' },
  { key: 'fmin', provenance: 'Fmin' },
  { key: 'fmax', provenance: 'Fmax' },
  { key: 'audioSpeed', provenance: 'Audio speed' },
];

/** The table options of the command line, by the names a model records them. */
const TABLE_OPTIONS = [
  'labelColumn',
  'labelSeparator',
  'fileColumn',
  'startColumn',
  'endColumn',
  'ignoreColumns',
  'delimiter',
] as const;

/** Columns a table to evaluate does not need: taken from the model, they may be missing. */
const UNNEEDED_COLUMNS = new Set<string>([
  'fileColumn',
  'startColumn',
  'endColumn',
  'ignoreColumns',
]);

/**
 * A table (.csv, .tsv, .tab) is read as the model's training table was: each table option not
 * given takes the model's value, and its feature columns are checked against the model's before
 * any row is read. The file, time and ignored columns taken so may be missing.
 */
function withModelTable(
  a: EvaluateArgs,
  model: Provenance,
  given: (key: string) => boolean,
): EvaluateArgs & Partial<LoadOptions> {
  const table = (model.embedding.table ?? {}) as Record<string, unknown>;
  if (!isTablePath(a.data) || typeof table !== 'object') return a;
  // What a hand-edited provenance.json holds of another type is left out.
  const valid = (key: string, value: unknown) =>
    key === 'ignoreColumns'
      ? Array.isArray(value) && value.every((v) => typeof v === 'string')
      : typeof value === 'string';
  const taken = TABLE_OPTIONS.filter((key) => !given(key) && valid(key, table[key]));
  const values = Object.fromEntries(taken.map((key) => [key, table[key]])) as Partial<CommonArgs>;
  const optional = taken
    .filter((key) => UNNEEDED_COLUMNS.has(key))
    .flatMap((key) => values[key] as string | string[]);
  return {
    ...a,
    ...values,
    optionalColumns: optional,
    features: model.embedding.features,
    ...(taken.includes('labelColumn')
      ? { labelColumnOrigin: "the model's, from its provenance.json; give --label-column" }
      : {}),
  };
}

/**
 * Recordings are scored as the model's training recordings were cut and filtered: each audio
 * option left at its default takes the model's value, and embeddings made otherwise (an option
 * given with another value, another embedder) are refused, naming each difference.
 */
function withModelAudio<T extends CommonArgs>(
  a: T,
  model: Provenance,
  given: (key: string) => boolean,
): T {
  const audio = model.embedding.audio;
  if (audio === undefined) return a;
  const taken = AUDIO_OPTIONS.filter((o) => !given(o.key) && audio[o.provenance] !== undefined);
  return { ...a, ...Object.fromEntries(taken.map((o) => [o.key, audio[o.provenance]])) };
}

/**
 * The load options of an evaluation: what neither the command line nor the model gave is the
 * default.
 */
function withDataDefaults(a: EvaluateArgs & Partial<LoadOptions>): LoadOptions {
  const given = Object.fromEntries(Object.entries(a).filter(([, value]) => value !== undefined));
  const { optionalColumns, features, labelColumnOrigin } = a;
  return {
    ...loadOptions({ ...DATA_DEFAULTS, ...given } as EvaluateArgs),
    optionalColumns,
    features,
    labelColumnOrigin,
  };
}

async function runEvaluate(a: EvaluateArgs, given: (key: string) => boolean): Promise<void> {
  if (a.out !== undefined) await checkReportTarget(a.out, a.model);
  await initBackend({ prefer: a.backend, log });
  const predictor = await loadPredictor(a.model);
  try {
    const data = await loadDataSet(a.data, {
      ...withDataDefaults(
        withModelAudio(withModelTable(a, predictor.provenance, given), predictor.provenance, given),
      ),
      validationSplit: 0,
      classes: predictor.labels,
      // Recordings cut or embedded otherwise are refused before the first one is decoded.
      checkEmbedding: (made) => checkSameEmbedding(made, predictor.provenance, a.data),
    });
    const { y, scores, rows, labels } = scoreDataSet(predictor, data, 'all', a.data);
    const r = evaluateScores(y, scores, rows, labels);
    process.stdout.write(`${rows} rows\n${formatReportTable(r)}\n`);
    if (r.top1 !== undefined) process.stdout.write(`top-1 accuracy: ${r.top1.toFixed(4)}\n`);
    for (const w of r.warnings) log(`warning: ${w}`);
    if (a.out !== undefined) await writeFile(a.out, reportToCsv(r));
  } finally {
    predictor.model.dispose();
  }
}

function demoCommand(): Command {
  return new Command('demo')
    .description('write synthetic recordings of four call types and noise, and train on them')
    .option('--out <dir>', 'folder for the demo recordings and model', 'demo')
    .option('--seed <n>', 'seed', integer('--seed', 0), 1)
    .action(async (opts: { out: string; seed: number }) => {
      const data = join(opts.out, 'data');
      const files = await writeSyntheticRecordings(data, { seed: opts.seed });
      log(`synthetic demo recordings written: ${files.length} clips in ${data}`);
      await runTrain({
        ...DEFAULT_TRAIN_ARGS,
        data,
        out: join(opts.out, 'model'),
        cropMode: 'segments',
        cache: join(opts.out, 'cache'),
        learningRate: 1e-2,
        upsamplingRatio: 0.5,
        seed: opts.seed,
      });
    });
}

const DEFAULT_TRAIN_ARGS: TrainArgs = {
  data: '',
  out: '',
  ...DATA_DEFAULTS,
  epochs: DEFAULT_SETTINGS.epochs,
  batchSize: DEFAULT_SETTINGS.batchSize,
  learningRate: DEFAULT_SETTINGS.learningRate,
  validationSplit: DEFAULT_SETTINGS.validationSplit,
  hiddenUnits: DEFAULT_SETTINGS.hiddenUnits,
  dropout: DEFAULT_SETTINGS.dropout,
  focalLoss: false,
  focalLossGamma: DEFAULT_SETTINGS.focalGamma,
  focalLossAlpha: DEFAULT_SETTINGS.focalAlpha,
  labelSmoothing: false,
  labelSmoothingAlpha: DEFAULT_SETTINGS.labelSmoothingAlpha,
  mixup: false,
  upsamplingRatio: DEFAULT_SETTINGS.upsamplingRatio,
  upsamplingMode: DEFAULT_SETTINGS.upsamplingMode,
  l2: DEFAULT_SETTINGS.l2,
  weightDecay: DEFAULT_SETTINGS.weightDecay,
  seed: DEFAULT_SETTINGS.seed,
  allowNoValidation: false,
};

export function program(): Command {
  return new Command('custom-classifier')
    .description('Train custom classifiers on embeddings (BirdNET-style) with TensorFlow.js')
    .version(PACKAGE.version)
    .showHelpAfterError()
    .configureHelp({ showGlobalOptions: true })
    .addCommand(trainCommand())
    .addCommand(evaluateCommand())
    .addCommand(demoCommand());
}

if (require.main === module) {
  program()
    .parseAsync(normalizeArgs(process.argv))
    .then(() => {
      if (tf.memory().numTensors > 0)
        log(`note: ${tf.memory().numTensors} tensors still allocated`);
    })
    .catch((err: Error) => {
      log(`error: ${err.message}`);
      // 130 is what a shell reports for a command that Ctrl-C ended.
      process.exitCode = err instanceof Interrupted ? 130 : 1;
    });
}
