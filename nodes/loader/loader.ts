import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { Subject, lastValueFrom, of, takeUntil } from 'rxjs';
import { DataSet, Source, summarize } from '../../src/dataset/dataset';
import { ParsedLabels, parseLabels } from '../../src/dataset/labels';
import { DATA_FORMATS, DataFormat, LoadOptions, fromLabelledRows } from '../../src/dataset/load';
import { RecordingsReport } from '../../src/dataset/recordings';
import { FloatRows } from '../../src/dataset/rows';
import { BUILT_IN_EMBEDDER } from '../../src/audio/embedder';
import { DEFAULT_AUDIO } from '../../src/audio/recordings';
import { CropMode } from '../../src/audio/segments';
import { load } from '../../src/streams/load';
import { lastChangeUnder, settle } from '../../src/streams/settle';
import { Send, numberSetting, onInput, resolvePath, status } from '../shared/runtime';
import { copyTypedArraysWhole } from '../shared/message-copy';

/** The editor's settings, as Node-RED stores them in the flow. */
interface LoaderConfig extends NodeDef {
  mode?: string;
  path?: string;
  pathType?: string;
  format?: string;
  labelColumn?: string;
  labelSeparator?: string;
  fileColumn?: string;
  startColumn?: string;
  endColumn?: string;
  ignoreColumns?: string;
  delimiter?: string;
  validationSplit?: string | number;
  seed?: string | number;
  testData?: string;
  cropMode?: string;
  overlap?: string | number;
  fmin?: string | number;
  fmax?: string | number;
  audioSpeed?: string | number;
  embedder?: string;
  modelPath?: string;
  modelSampleRate?: string | number;
  modelInputSeconds?: string | number;
  modelOutput?: string;
  customLayers?: string;
  cacheDir?: string;
  settle?: string | number;
  holdout?: string | number;
}

/** A trigger waiting for the files to settle; resolved true to load, false when superseded. */
interface Waiting {
  paths: string[];
  resolve: (load: boolean) => void;
}

/** The embedding cache's folder when the setting is empty, below the Node-RED user directory. */
const DEFAULT_CACHE_DIR = 'custom-classifier/embeddings-cache';

/** The settings both modes share: how the rows are split. */
interface SplitSettings {
  validationSplit: number;
  seed: number;
}

export = function (RED: NodeAPI) {
  copyTypedArraysWhole(RED);

  function LoaderNode(this: Node, config: LoaderConfig) {
    RED.nodes.createNode(this, config);
    const closing = new Subject<void>();
    const samples = new SampleCollector(config.labelSeparator || ',');

    const emit = (msg: NodeMessage, send: Send, data: DataSet, recordings?: RecordingsReport) => {
      const summary = { ...summarize(data), ...(recordings && { recordings }) };
      this.log(
        `data set: ${summary.rows} rows x ${summary.dim} values, ${summary.classes} classes; ` +
          `train ${summary.parts.train}, validation ${summary.parts.validation}, ` +
          `test ${summary.parts.test}`,
      );
      this.status(status.done(`${data.rows} x ${data.labels.length}`));
      send({ ...msg, payload: data, summary });
    };

    // Settings of flows made before the quiet period existed have none: they load at once.
    const quietMs =
      1000 *
      numberSetting(config.settle ?? 0, 'settle', (v) => v >= 0 && v <= 3600, 'seconds, 0 to 3600');
    let waiting: Waiting | undefined;
    const triggers = new Subject<Waiting>();
    triggers
      .pipe(
        settle(quietMs, async (w) =>
          Math.max(...(await Promise.all(w.paths.map(lastChangeUnder)))),
        ),
        takeUntil(closing),
      )
      .subscribe((w) => {
        if (waiting === w) waiting = undefined;
        w.resolve(true);
      });

    /** Waits for the files to settle; false when a later trigger took this one's place. */
    const settled = (paths: string[]): Promise<boolean> => {
      if (quietMs === 0) return Promise.resolve(true);
      this.status(status.working('waiting for files'));
      return new Promise((resolve) => {
        waiting?.resolve(false);
        waiting = { paths, resolve };
        triggers.next(waiting);
      });
    };

    const loadFile = async (msg: NodeMessageInFlow, send: Send) => {
      const path = pathOf(RED, this, config, msg);
      let recordings: RecordingsReport | undefined;
      const settings = loadOptions(RED, this, config);
      const paths = settings.testData === undefined ? [path] : [path, settings.testData];
      if (!(await settled(paths))) return;
      const options: LoadOptions = {
        ...settings,
        warn: (line) => this.warn(line),
        progress: (done, total) => this.status(status.working(`embedding ${done}/${total}`)),
        onRecordings: (report) => {
          recordings = report;
          this.log(
            `recordings: ${report.files} files (${report.embedded} embedded, ` +
              `${report.cached} cached), ${report.segments} segments, ` +
              `${report.nothing.length} gave nothing (${report.skipped} skipped)`,
          );
        },
      };
      this.status(status.working('loading'));
      const data = await lastValueFrom(of(path).pipe(load(options), takeUntil(closing)), {
        defaultValue: undefined,
      });
      if (data !== undefined) emit(msg, send, data, recordings);
    };

    const collect = (msg: NodeMessageInFlow, send: Send) => {
      if (has(msg, 'reset')) {
        samples.reset();
        this.status(status.idle('collecting 0'));
        return;
      }
      const completing = has(msg, 'complete');
      if (!completing || carriesSample(msg)) samples.add(msg);
      if (!completing) {
        this.status(status.working(`collecting ${samples.size}`));
        return;
      }

      const data = samples.toDataSet(splitSettings(config));
      samples.reset();
      const out: NodeMessage = { ...msg };
      for (const key of ['complete', 'label', 'source']) delete out[key];
      emit(out, send, data);
    };

    onInput(this, (msg, send) =>
      config.mode === 'samples' ? collect(msg, send) : loadFile(msg, send),
    );

    this.on('close', (_removed: boolean, done: () => void) => {
      waiting?.resolve(false);
      closing.next();
      closing.complete();
      samples.reset();
      this.status({});
      done();
    });
  }

  RED.nodes.registerType('classifier-loader', LoaderNode);
};

/** The data path: from the settings, or from the message only when the user chose `msg`. */
function pathOf(RED: NodeAPI, node: Node, config: LoaderConfig, msg: NodeMessage): string {
  const type = config.pathType || 'str';
  const value: unknown = RED.util.evaluateNodeProperty(config.path ?? '', type, node, msg);
  if (typeof value !== 'string' || value.trim() === '') {
    const where = type === 'str' ? 'path' : `path (${type} ${config.path ?? ''})`;
    throw new Error(
      `${where}: expected the path of a folder of class folders, a table or an .npz file, ` +
        `got ${value === '' ? 'an empty text' : typeof value}`,
    );
  }
  return resolvePath(RED, node, value.trim());
}

function loadOptions(RED: NodeAPI, node: Node, config: LoaderConfig): LoadOptions {
  const format = config.format || 'auto';
  if (!(DATA_FORMATS as readonly string[]).includes(format)) {
    throw new Error(`format: expected one of ${DATA_FORMATS.join(', ')}, got "${format}"`);
  }
  const testData = text(config.testData);
  return {
    ...splitSettings(config),
    format: format as DataFormat,
    labelColumn: text(config.labelColumn),
    labelSeparator: config.labelSeparator || ',',
    fileColumn: text(config.fileColumn),
    startColumn: text(config.startColumn),
    endColumn: text(config.endColumn),
    ignoreColumns: text(config.ignoreColumns)
      ?.split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
    delimiter: delimiterOf(config.delimiter),
    testData: testData === undefined ? undefined : resolvePath(RED, node, testData),
    holdout: numberSetting(
      config.holdout ?? 0,
      'test holdout',
      (v) => v >= 0 && v < 1,
      'a share of the files from 0 up to (not including) 1',
    ),
    ...audioOptions(RED, node, config),
  };
}

/** How recordings are cut and embedded: BirdNET-Analyzer's audio options and the embedder. */
function audioOptions(RED: NodeAPI, node: Node, config: LoaderConfig): LoadOptions {
  const seconds = (v: string | number | undefined, field: string, fallback: number) =>
    numberSetting(v ?? fallback, field, (n) => n >= 0, 'seconds >= 0');
  const hz = (v: string | number | undefined, field: string, fallback: number) =>
    numberSetting(v ?? fallback, field, (n) => n >= 0, 'a number of Hz >= 0');
  const optional = (v: string | number | undefined, field: string) =>
    v === undefined || String(v).trim() === ''
      ? undefined
      : numberSetting(v, field, (n) => n > 0, 'a number above 0');
  const model = config.embedder === 'model';
  const modelPath = text(config.modelPath);
  if (model && modelPath === undefined) {
    throw new Error('model: expected the path of a TF.js model.json for embedder "model"');
  }
  const cacheDir = text(config.cacheDir) ?? DEFAULT_CACHE_DIR;
  return {
    audio: {
      mode: (config.cropMode || DEFAULT_AUDIO.mode) as CropMode,
      overlap: seconds(config.overlap, 'overlap', DEFAULT_AUDIO.overlap),
      fmin: hz(config.fmin, 'fmin', DEFAULT_AUDIO.fmin),
      fmax: hz(config.fmax, 'fmax', DEFAULT_AUDIO.fmax),
      speed: optional(config.audioSpeed, 'audio speed') ?? DEFAULT_AUDIO.speed,
    },
    embedder: model ? resolvePath(RED, node, modelPath!) : BUILT_IN_EMBEDDER,
    modelSampleRate: model ? optional(config.modelSampleRate, 'model sample rate') : undefined,
    modelInputSeconds: model
      ? optional(config.modelInputSeconds, 'model input seconds')
      : undefined,
    modelOutput: model ? text(config.modelOutput) : undefined,
    customLayers:
      model && text(config.customLayers) !== undefined
        ? resolvePath(RED, node, text(config.customLayers)!)
        : undefined,
    cacheDir: cacheDir === 'off' ? false : resolvePath(RED, node, cacheDir),
  };
}

function splitSettings(config: LoaderConfig): SplitSettings {
  return {
    validationSplit: numberSetting(
      config.validationSplit ?? 0.2,
      'validation split',
      (v) => v >= 0 && v < 1,
      'a number from 0 up to (not including) 1',
    ),
    seed: numberSetting(
      config.seed ?? 42,
      'seed',
      (v) => Number.isInteger(v) && v >= 0,
      'an integer >= 0',
    ),
  };
}

/** A trimmed setting, or undefined when it is empty. */
function text(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

function delimiterOf(value: string | undefined): string | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  return value === 'tab' || value === '\\t' ? '\t' : value;
}

/** Whether a message property is present at all, as Node-RED's join node tests it. */
function has(msg: NodeMessage, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(msg, key);
}

/** True when a message holds a sample, not just the signal that the set is complete. */
function carriesSample(msg: NodeMessage): boolean {
  return msg.label !== undefined || Array.isArray(msg.payload) || ArrayBuffer.isView(msg.payload);
}

/**
 * Labelled embeddings gathered one message at a time. Every sample must have the length of the
 * first; errors name the message by its number since the last reset, as a user counts them.
 */
class SampleCollector {
  private rows = new FloatRows();
  private labels: ParsedLabels[] = [];
  private sources: (Source | undefined)[] = [];
  private received = 0;
  private firstMessage = 0;

  constructor(private readonly separator: string) {}

  get size(): number {
    return this.labels.length;
  }

  add(msg: NodeMessage): void {
    this.received++;
    const n = this.received;
    const values = embeddingOf(msg.payload, n);
    if (this.size > 0 && values.length !== this.rows.dim) {
      throw new Error(
        `msg.payload (message ${n}): embedding has ${values.length} values, expected ` +
          `${this.rows.dim} as in message ${this.firstMessage}`,
      );
    }
    const labels = labelsOf(msg.label, n, this.separator);
    const source = sourceOf(msg.source, n);

    if (this.size === 0) {
      this.rows.setDim(values.length);
      this.firstMessage = n;
    }
    this.rows.push(values);
    this.labels.push(labels);
    this.sources.push(source);
  }

  toDataSet(split: SplitSettings): DataSet {
    if (this.size === 0) {
      throw new Error('msg.complete: no samples collected since the last data set or reset');
    }
    return fromLabelledRows(
      { x: this.rows.toArray(), dim: this.rows.dim, labels: this.labels, sources: this.sources },
      { ...split, where: `collected samples (${this.size})`, source: 'messages' },
    );
  }

  reset(): void {
    this.rows = new FloatRows();
    this.labels = [];
    this.sources = [];
    this.received = 0;
    this.firstMessage = 0;
  }
}

function embeddingOf(payload: unknown, n: number): ArrayLike<number> {
  const numeric =
    Array.isArray(payload) || payload instanceof Float32Array || payload instanceof Float64Array;
  if (!numeric || payload.length === 0) {
    throw new Error(
      `msg.payload (message ${n}): expected an embedding (an array of numbers or a ` +
        `Float32Array), got ${describe(payload)}`,
    );
  }
  for (let i = 0; i < payload.length; i++) {
    const v: unknown = payload[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new Error(
        `msg.payload (message ${n}): value ${i + 1} is not a finite number (${String(v)})`,
      );
    }
  }
  return payload as ArrayLike<number>;
}

function labelsOf(label: unknown, n: number, separator: string): ParsedLabels {
  const joined = Array.isArray(label) ? label.join(separator) : label;
  if (typeof joined !== 'string' || joined.trim() === '') {
    throw new Error(
      `msg.label (message ${n}): expected the sample's label, e.g. "A", "A${separator}B", ` +
        `"-A" or "noise"; got ${describe(label)}`,
    );
  }
  return parseLabels(joined, separator);
}

function sourceOf(source: unknown, n: number): Source | undefined {
  if (source === undefined || source === null) return undefined;
  const s = source as Partial<Record<keyof Source, unknown>>;
  const time = (t: unknown) => t === undefined || (typeof t === 'number' && Number.isFinite(t));
  if (typeof s !== 'object' || typeof s.file !== 'string' || !time(s.start) || !time(s.end)) {
    throw new Error(
      `msg.source (message ${n}): expected { file, start, end } with a file name and times ` +
        `in seconds, got ${describe(source)}`,
    );
  }
  return { file: s.file, start: s.start as number | undefined, end: s.end as number | undefined };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'Object'})`;
  return `${typeof value} ${JSON.stringify(value)}`.slice(0, 60);
}
