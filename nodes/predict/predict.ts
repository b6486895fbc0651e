import { stat } from 'fs/promises';
import { join } from 'path';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { Subject, Subscription } from 'rxjs';
import { ModelStore, currentVersionDirs, versionOf } from '../../src/store/model-store';
import { MODEL_JSON } from '../../src/store/model-files';
import { Source } from '../../src/dataset/dataset';
import {
  Embeddings,
  PredictReply,
  PredictRequest,
  Predictor,
  ThresholdMode,
  labelsAbove,
  loadPredictor,
  predict,
  thresholdsFor,
} from '../../src/streams/predict';
import {
  Send,
  backendFor,
  dataSetFrom,
  numberSetting,
  onInput,
  resolvePath,
  status,
} from '../shared/runtime';

interface PredictConfig extends NodeDef {
  modelDir: string;
  modelDirType: string;
  thresholdMode: string;
  threshold: string | number;
  maxLabels: string | number;
}

/** Settings once checked. */
interface Settings {
  mode: ThresholdMode;
  threshold: number;
  maxLabels: number;
}

/** What a request carries through the predictor and back. */
interface Job {
  settle: (err?: Error) => void;
  /** Sends the messages of scored rows. */
  emit?: (predictor: Predictor, scores: Float32Array) => void;
}

/** Embeddings read from a message, with where each row came from. */
interface Rows extends Embeddings {
  sources: (Source | undefined)[] | undefined;
}

export = function (RED: NodeAPI) {
  function PredictNode(this: Node, config: PredictConfig) {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: Node, config: PredictConfig): void {
    let settings: Settings | Error;
    try {
      settings = readSettings(config);
    } catch (err) {
      // Every message then fails with the reason, so a Catch node sees it too.
      settings = err as Error;
      node.status(status.failed(err));
      node.error(settings.message);
    }

    const requests = new Subject<PredictRequest<Job>>();
    let released: () => void = () => undefined;
    const allReleased = new Promise<void>((resolve) => (released = resolve));
    const subscription = requests
      .pipe(
        predict<Job>({
          load: async (dir) => {
            await backendFor(node);
            return loadPredictor(dir);
          },
          onReleased: () => released(),
        }),
      )
      .subscribe((reply) => answer(reply));

    // The directory most recently asked for, so a message naming the same one does not reload it.
    let requestedDir: string | undefined;
    // A model store whose current version is followed, and what follows it.
    let following: { root: string; subscription: Subscription } | undefined;
    // Settles once the model asked for last has been requested: embeddings wait for it, so none
    // reaches the predictor before the load it was sent after.
    let ready: Promise<void> = Promise.resolve();

    function answer(reply: PredictReply<Job>): void {
      if (reply.type === 'failed') {
        reply.context.settle(reply.error);
        return;
      }
      if (reply.type === 'loaded') {
        const { labels, dim, dir } = reply.predictor;
        node.log(`model loaded: ${dir} (${labels.length} labels, ${dim} values per embedding)`);
        node.status(status.done(`${labels.length} labels`));
      } else {
        try {
          reply.context.emit?.(reply.predictor, reply.scores);
        } catch (err) {
          // Thrown here, it would escape the stream and the runtime; the message's done gets it.
          reply.context.settle(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      }
      reply.context.settle();
    }

    function load(dir: string): Promise<void> {
      requestedDir = dir;
      node.status(status.working('loading'));
      return new Promise((resolve, reject) => {
        const settle = (err?: Error) => {
          if (err === undefined) return resolve();
          // A later message naming the same directory tries again.
          if (requestedDir === dir) requestedDir = undefined;
          reject(err);
        };
        requests.next({ type: 'load', dir, context: { settle } });
      });
    }

    /**
     * Uses a model directory (a folder with model.json), or else follows the current version of
     * a model store there, which may not exist yet.
     */
    async function use(dir: string): Promise<void> {
      if (await isModelDirectory(dir)) {
        stopFollowing();
        return load(dir);
      }
      if (following?.root === dir) return;
      stopFollowing();
      const current = await new ModelStore(dir).current();
      const first = current === undefined ? undefined : new ModelStore(dir).dirOf(current.version);
      const loaded = first === undefined ? Promise.resolve() : load(first);
      if (first === undefined) node.status(status.idle('no model yet'));
      following = {
        root: dir,
        subscription: currentVersionDirs(dir).subscribe({
          next: (versionDir) => {
            if (versionDir === requestedDir) return;
            node.log(`model store ${dir}: current version ${versionOf(versionDir)}`);
            load(versionDir).catch((err: Error) => {
              node.status(status.failed(err));
              node.error(`model store ${dir}: ${err.message}`);
            });
          },
          error: (err: Error) => node.error(`model store ${dir}: ${err.message}`),
        }),
      };
      return loaded;
    }

    function stopFollowing(): void {
      following?.subscription.unsubscribe();
      following = undefined;
    }

    function modelDirOf(msg: NodeMessage): string | undefined {
      const value: unknown = RED.util.evaluateNodeProperty(
        config.modelDir ?? '',
        config.modelDirType || 'str',
        node,
        msg,
      );
      if (value === undefined || value === null || value === '') return undefined;
      if (typeof value !== 'string') {
        throw new Error(`model directory: expected a path, got ${typeof value}`);
      }
      return resolvePath(RED, node, value);
    }

    if (config.modelDirType !== 'msg' && !(settings instanceof Error)) {
      const dir = modelDirOf({});
      if (dir === undefined) node.status(status.idle('no model'));
      else {
        const using = use(dir);
        ready = using.catch(() => undefined);
        using.catch((err: Error) => {
          node.status(status.failed(err));
          node.error(`model directory ${dir}: ${err.message}`);
        });
      }
    }

    onInput(node, async (msg, send) => {
      if (settings instanceof Error) throw settings;
      const s = settings;

      const trained = trainerModelDir(msg.payload);
      if (trained !== undefined) {
        const using = use(resolvePath(RED, node, trained));
        ready = using.catch(() => undefined);
        await using;
        return;
      }
      await ready;
      if (following !== undefined && requestedDir === undefined) {
        throw new Error(
          `${following.root}: no model yet: neither a model directory (no model.json) nor a ` +
            `model store with a current version (no current.json)`,
        );
      }

      const rows = rowsFrom(msg);
      let expectedDir: string | undefined;
      if (config.modelDirType === 'msg') {
        expectedDir = modelDirOf(msg);
        if (expectedDir === undefined) {
          throw new Error(`msg.${config.modelDir}: expected the path of a model directory`);
        }
        if (expectedDir !== requestedDir) void load(expectedDir).catch(() => undefined);
      }

      await new Promise<void>((resolve, reject) => {
        const settle = (err?: Error) => (err === undefined ? resolve() : reject(err));
        const emit = (predictor: Predictor, scores: Float32Array) =>
          sendScores(msg, send, rows, predictor, scores, s);
        requests.next({
          type: 'score',
          embeddings: rows,
          where: 'msg.payload',
          dir: expectedDir,
          context: { settle, emit },
        });
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      stopFollowing();
      subscription.unsubscribe();
      void allReleased.then(() => done());
    });
  }

  RED.nodes.registerType('classifier-predict', PredictNode);
};

function isModelDirectory(dir: string): Promise<boolean> {
  return stat(join(dir, MODEL_JSON)).then(
    () => true,
    () => false,
  );
}

function readSettings(config: PredictConfig): Settings {
  const mode = config.thresholdMode || 'f1';
  if (mode !== 'f1' && mode !== 'fixed') {
    throw new Error(`threshold mode: expected f1 or fixed, got "${mode}"`);
  }
  const threshold = numberSetting(
    config.threshold ?? 0.5,
    'threshold',
    (v) => v >= 0 && v <= 1,
    'a number from 0 to 1',
  );
  const maxLabels = numberSetting(
    config.maxLabels ?? 0,
    'max labels',
    (v) => Number.isInteger(v) && v >= 0,
    'a whole number >= 0 (0: all)',
  );
  return { mode, threshold, maxLabels };
}

/** The model directory of a trainer result message, or undefined for any other payload. */
function trainerModelDir(payload: unknown): string | undefined {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return undefined;
  if (ArrayBuffer.isView(payload)) return undefined;
  const dir = (payload as { modelDir?: unknown }).modelDir;
  return typeof dir === 'string' && dir !== '' ? dir : undefined;
}

/**
 * One embedding (number[] or a typed array), several (an array of them), or a data set, as
 * `[rows, dim]` float32 rows.
 */
function rowsFrom(msg: NodeMessageInFlow): Rows {
  const payload = msg.payload;
  const expected =
    'expected an embedding (number[] or Float32Array), several (number[][]) or a data set';
  if (Buffer.isBuffer(payload)) {
    throw new Error(`msg.payload: ${expected}, got bytes (a Buffer): parse them first`);
  }
  if (isNumbers(payload)) {
    const x = toFloat32(payload, 'msg.payload');
    return { x, rows: 1, dim: x.length, sources: undefined };
  }
  if (Array.isArray(payload) && payload.length > 0 && payload.every(isNumbers)) {
    const dim = payload[0].length;
    const x = new Float32Array(payload.length * dim);
    payload.forEach((row, r) => {
      if (row.length !== dim) {
        throw new Error(
          `msg.payload[${r}]: ${row.length} values, but msg.payload[0] has ${dim}; ` +
            'every embedding must have the same length',
        );
      }
      x.set(toFloat32(row, `msg.payload[${r}]`), r * dim);
    });
    return { x, rows: payload.length, dim, sources: undefined };
  }
  if (payload !== null && typeof payload === 'object' && !Array.isArray(payload)) {
    const data = dataSetFrom(payload);
    return { x: data.x, rows: data.rows, dim: data.dim, sources: [...data.sources] };
  }
  const got = Array.isArray(payload) ? 'an array of something else' : typeof payload;
  throw new Error(`msg.payload: ${expected}, got ${payload === null ? 'null' : got}`);
}

type Numbers = ArrayLike<number>;

function isNumbers(value: unknown): value is Numbers {
  // Bytes (an MQTT or file payload) are not an embedding: read them with a JSON or CSV node.
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return false;
  if (ArrayBuffer.isView(value)) return !(value instanceof DataView);
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'number');
}

function toFloat32(values: Numbers, where: string): Float32Array {
  if (values.length === 0) throw new Error(`${where}: the embedding is empty`);
  const x = Float32Array.from(values);
  const bad = x.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`${where}[${bad}]: expected a finite number, got ${values[bad]}`);
  return x;
}

/** One message per scored row, in the shared output format. */
function sendScores(
  msg: NodeMessageInFlow,
  send: Send,
  rows: Rows,
  predictor: Predictor,
  scores: Float32Array,
  settings: Settings,
): void {
  const { labels } = predictor;
  const k = labels.length;
  const thresholds = thresholdsFor(predictor, settings.mode, settings.threshold);
  const version = versionOf(predictor.dir);
  const model = { dir: predictor.dir, labels: [...labels], ...(version && { version }) };
  const rest: NodeMessage = { ...msg };
  delete rest.payload;
  const perRowSource = Array.isArray(msg.source) && msg.source.length === rows.rows;

  const out: NodeMessage[] = [];
  for (let r = 0; r < rows.rows; r++) {
    const row = scores.subarray(r * k, (r + 1) * k);
    const source =
      rows.sources !== undefined
        ? rows.sources[r]
        : perRowSource
          ? (msg.source as unknown[])[r]
          : msg.source;
    out.push({
      ...rest,
      payload: labelsAbove(row, labels, thresholds, settings.maxLabels),
      scores: Object.fromEntries(labels.map((label, c) => [label, row[c]])),
      source,
      model,
      ...(rows.rows > 1 ? { row: r } : {}),
    });
  }
  send(out.length === 1 ? out[0] : [out]);
}
