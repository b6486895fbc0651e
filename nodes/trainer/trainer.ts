import { readdir } from 'fs/promises';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import type { LayersModel } from '@tensorflow/tfjs';
import {
  EMPTY,
  Observable,
  Subject,
  catchError,
  defer,
  finalize,
  ignoreElements,
  of,
  takeUntil,
  tap,
} from 'rxjs';
import { DataSet } from '../../src/dataset/dataset';
import { checkModelTarget } from '../../src/store/model-directory';
import { EvaluationReport } from '../../src/evaluate/metrics';
import { reportToJson } from '../../src/evaluate/report';
import { DEFAULT_SETTINGS, settingsTable } from '../../src/settings';
import { BUSY_POLICIES, BusyPolicy, DropReason, whileBusy } from '../../src/streams/busy';
import { evaluate } from '../../src/streams/evaluate';
import { SavedEvent, save } from '../../src/streams/save';
import {
  STORE_METRICS,
  StoreMetric,
  StoreOptions,
  StoredEvent,
  saveVersion,
} from '../../src/streams/store';
import { ModelStore, isModelStore } from '../../src/store/model-store';
import { train } from '../../src/streams/train';
import { DEFAULT_TRAIN_OPTIONS, EpochStats, TrainOptions } from '../../src/train/trainer';
import {
  Send,
  backendFor,
  dataSetFrom,
  numberSetting,
  onInput,
  resolvePath,
  status,
} from '../shared/runtime';
import { copyTypedArraysWhole } from '../shared/message-copy';

/** The editor's settings, as Node-RED stores them in the flow. */
interface TrainerConfig extends NodeDef {
  epochs?: string | number;
  batchSize?: string | number;
  learningRate?: string | number;
  hiddenUnits?: string | number;
  dropout?: string | number;
  focalLoss?: boolean | string;
  focalGamma?: string | number;
  focalAlpha?: string | number;
  l2?: string | number;
  weightDecay?: string | number;
  allowNoValidation?: boolean | string;
  modelDir?: string;
  modelDirType?: string;
  busy?: string;
  queueLength?: string | number;
  saveAs?: string;
  keep?: string | number;
  metric?: string;
}

interface TrainerSettings {
  options: TrainOptions;
  busy: BusyPolicy;
  queueLength: number;
  /** Versions in a model store, promoted by a test metric; undefined: one model directory. */
  store?: Required<StoreOptions>;
}

/** Where models go when the settings name no folder: inside the Node-RED user directory. */
const DEFAULT_MODEL_DIR = 'custom-classifier/model';

/** Why an input got no result although nothing failed. */
type EndReason = DropReason | 'cancelled' | 'closed';

const WHY: Record<EndReason, string> = {
  ignored: 'not trained: busy with another run (busy policy "ignore")',
  replaced: 'not trained: a newer data set replaced it in the queue',
  restarted: 'training cancelled: restarted with a newer data set; nothing saved',
  cancelled: 'training cancelled on request (msg.cancel); nothing saved',
  closed: 'training cancelled: the node is stopping (redeploy or shutdown); nothing saved',
};

type SavedResult = Extract<SavedEvent, { type: 'result' }> &
  Partial<Pick<Extract<StoredEvent, { type: 'result' }>, 'promotion'>>;

/**
 * One input data set on its way through the busy policy. Its input message is completed exactly
 * once: through {@link Job.finish} (result sent or failed) or {@link Job.end} (no result).
 */
class Job {
  running = false;
  readonly stop = new AbortController();
  readonly cancel = new Subject<void>();
  /** Settles when the input's message is complete; rejects when its run failed. */
  readonly completed: Promise<void>;
  private settle: (err?: Error) => void = () => undefined;
  private open = true;

  constructor(
    readonly msg: NodeMessageInFlow,
    readonly send: Send,
    readonly data: DataSet,
    readonly modelDir: string,
    readonly hyperparameters: Record<string, string | number | boolean>,
  ) {
    this.completed = new Promise<void>((resolve, reject) => {
      this.settle = (err) => (err === undefined ? resolve() : reject(err));
    });
  }

  get pending(): boolean {
    return this.open;
  }

  finish(err?: Error): void {
    if (!this.open) return;
    this.open = false;
    this.settle(err);
  }

  /** Completes the input without a result, telling the user why. */
  end(node: Node, reason: EndReason): void {
    if (!this.open) return;
    node.warn(`data set of message ${this.msg._msgid}: ${WHY[reason]}`);
    this.finish();
  }
}

export = function (RED: NodeAPI) {
  copyTypedArraysWhole(RED);

  function TrainerNode(this: Node, config: TrainerConfig) {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: Node, config: TrainerConfig): void {
    let settings: TrainerSettings;
    try {
      settings = settingsOf(config);
    } catch (err) {
      // Every message then fails with the reason, so a Catch node sees it too.
      const error = err as Error;
      node.status(status.failed(error));
      node.error(error.message);
      onInput(node, () => {
        throw error;
      });
      return;
    }

    /** Inputs whose message is not complete yet: waiting or training. */
    const jobs = new Set<Job>();
    /** Training loops that have not released their tensors yet. */
    const trainings = new Set<Promise<void>>();
    const inputs = new Subject<Job>();
    let closing = false;

    const progress = (job: Job, e: EpochStats) => {
      node.status(status.working(`epoch ${e.epoch}/${e.epochs} loss ${brief(e.loss)}`));
      node.log(epochLine(e));
      const point = (topic: string, payload: number) => ({
        topic,
        payload,
        epoch: e.epoch,
        epochs: e.epochs,
      });
      const points: NodeMessage[] = [point('loss', e.loss)];
      if (e.valLoss !== undefined) points.push(point('val_loss', e.valLoss));
      if (e.valAuprc !== undefined) points.push(point('val_AUPRC', e.valAuprc));
      job.send([null, points]);
    };

    const deliver = (job: Job, saved: SavedResult) => {
      node.log(`model saved: ${saved.dir}`);
      if (saved.promotion !== undefined) node.log(saved.promotion.reason);
      const payload = resultOf(saved, job.hyperparameters, settings.store && job.modelDir);
      job.send([{ ...job.msg, payload }, null]);
      const stopped = job.stop.signal.aborted && saved.result.stoppedEarly;
      const promotion = saved.promotion;
      node.status(
        status.done(
          promotion === undefined
            ? stopped
              ? 'stopped'
              : 'saved'
            : `${promotion.version} ${promotion.promoted ? 'promoted' : 'kept out'}`,
        ),
      );
      job.finish();
    };

    const run = (job: Job): Observable<never> =>
      defer(() => {
        job.running = true;
        node.status(status.working('training'));
        let model: LayersModel | undefined;
        let settled: () => void = () => undefined;
        const freed = new Promise<void>((resolve) => (settled = resolve));
        trainings.add(freed);
        void freed.then(() => trainings.delete(freed));

        return of(job.data).pipe(
          train(settings.options, { stop: job.stop.signal, onSettled: settled }),
          tap((e) => {
            if (e.type === 'epoch') progress(job, e);
            else model = e.result.model;
          }),
          evaluate(),
          settings.store === undefined
            ? save(job.modelDir, job.hyperparameters)
            : saveVersion(job.modelDir, job.hyperparameters, settings.store),
          tap((e) => {
            if (e.type !== 'result') return;
            e.result.model.dispose();
            model = undefined;
            deliver(job, e);
          }),
          ignoreElements(),
          takeUntil(job.cancel),
          catchError((err: unknown) => {
            job.finish(err instanceof Error ? err : new Error(String(err)));
            return EMPTY;
          }),
          finalize(() => {
            // A run cancelled after training (while evaluating or saving) still holds the model.
            model?.dispose();
            job.running = false;
          }),
        );
      });

    const subscription = inputs
      .pipe(
        whileBusy(settings.busy, run, {
          queueLength: settings.queueLength,
          onDrop: (job, reason) => job.end(node, reason),
        }),
      )
      .subscribe();

    const current = (): Job | undefined => [...jobs].find((job) => job.running);

    const control = (msg: NodeMessageInFlow) => {
      const job = current();
      const what = msg.cancel ? 'cancel' : 'stop';
      if (job === undefined) {
        node.warn(`${what}: no training in progress`);
        return;
      }
      if (what === 'stop') {
        node.status(status.working('stopping'));
        job.stop.abort();
        return;
      }
      node.status(status.idle('cancelled'));
      job.end(node, 'cancelled');
      job.cancel.next();
    };

    const rollback = async (msg: NodeMessageInFlow, send: Send) => {
      const root = modelDirOf(RED, node, config, msg);
      if (settings.store === undefined) {
        throw new Error('msg.rollback: the trainer saves one model directory, not versions');
      }
      const wanted = typeof msg.rollback === 'string' ? msg.rollback : undefined;
      const current = await new ModelStore(root).rollback(wanted);
      node.log(`model store ${root}: rolled back to ${current.version}`);
      node.status(status.done(`rolled back ${current.version}`));
      send([{ ...msg, payload: { modelDir: root, version: current.version, current } }, null]);
    };

    /**
     * Checks a data set message and hands its job to the busy policy. Jobs reach the policy in
     * the order their messages arrived, though each waits for the file system on the way.
     */
    const admit = async (msg: NodeMessageInFlow, send: Send): Promise<Job | undefined> => {
      const data = dataSetFrom(msg.payload);
      const backend = await backendFor(node);
      const modelDir = modelDirOf(RED, node, config, msg);
      await (settings.store === undefined
        ? checkModelTarget(modelDir)
        : checkStoreTarget(modelDir));
      const job = new Job(
        msg,
        (out) => closing || send(out),
        data,
        modelDir,
        hyperparametersOf(settings.options, data, backend),
      );
      if (closing) {
        job.end(node, 'closed');
        return undefined;
      }

      jobs.add(job);
      void job.completed.then(
        () => jobs.delete(job),
        () => jobs.delete(job),
      );
      inputs.next(job);
      if (job.pending && !job.running) {
        const waiting = [...jobs].filter((j) => !j.running).length;
        node.status(status.idle(`queued ${waiting}`));
      }
      return job;
    };
    let admitting: Promise<unknown> = Promise.resolve();

    onInput(node, async (msg, send) => {
      if (msg.cancel || msg.stop) {
        control(msg);
        return;
      }
      if (msg.rollback !== undefined && msg.rollback !== false) {
        await rollback(msg, send);
        return;
      }
      const admitted = admitting.then(() => admit(msg, send));
      admitting = admitted.catch(() => undefined);
      const job = await admitted;
      return job?.completed;
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      subscription.unsubscribe();
      for (const job of [...jobs]) job.end(node, 'closed');
      node.status({});
      // Node-RED may load the next flow as soon as `done` is called: the cancelled loop must have
      // released its tensors by then.
      void Promise.all([...trainings]).then(() => done());
    });
  }

  RED.nodes.registerType('classifier-trainer', TrainerNode);
};

function settingsOf(config: TrainerConfig): TrainerSettings {
  const d = DEFAULT_TRAIN_OPTIONS;
  const integer = (min: number) => (v: number) => Number.isInteger(v) && v >= min;
  const atLeastZero = (v: number) => v >= 0;
  const busy = config.busy || 'queue';
  if (!(BUSY_POLICIES as readonly string[]).includes(busy)) {
    throw new Error(`busy policy: expected one of ${BUSY_POLICIES.join(', ')}, got "${busy}"`);
  }
  return {
    options: {
      epochs: numberSetting(config.epochs ?? d.epochs, 'epochs', integer(1), 'an integer >= 1'),
      batchSize: numberSetting(
        config.batchSize ?? d.batchSize,
        'batch size',
        integer(1),
        'an integer >= 1',
      ),
      learningRate: numberSetting(
        config.learningRate ?? d.learningRate,
        'learning rate',
        (v) => v > 0 && v < 10,
        'a number above 0 and below 10',
      ),
      hiddenUnits: numberSetting(
        config.hiddenUnits ?? d.hiddenUnits,
        'hidden units',
        integer(0),
        'an integer >= 0',
      ),
      dropout: numberSetting(
        config.dropout ?? d.dropout,
        'dropout',
        (v) => v >= 0 && v < 1,
        'a number from 0 up to (not including) 1',
      ),
      loss: flag(config.focalLoss) ? 'focal' : 'crossentropy',
      focalGamma: numberSetting(
        config.focalGamma ?? d.focalGamma,
        'focal loss gamma',
        atLeastZero,
        'a number >= 0',
      ),
      focalAlpha: numberSetting(
        config.focalAlpha ?? d.focalAlpha,
        'focal loss alpha',
        (v) => v >= 0 && v <= 1,
        'a number from 0 to 1',
      ),
      l2: numberSetting(config.l2 ?? d.l2, 'L2 factor', atLeastZero, 'a number >= 0'),
      weightDecay: numberSetting(
        config.weightDecay ?? d.weightDecay,
        'weight decay',
        atLeastZero,
        'a number >= 0',
      ),
      allowNoValidation: flag(config.allowNoValidation),
      yieldEveryMs: d.yieldEveryMs,
    },
    busy: busy as BusyPolicy,
    queueLength: numberSetting(
      config.queueLength ?? 1,
      'queue length',
      integer(1),
      'an integer >= 1',
    ),
    store: storeSettingsOf(config),
  };
}

function storeSettingsOf(config: TrainerConfig): Required<StoreOptions> | undefined {
  const saveAs = config.saveAs || 'directory';
  if (saveAs !== 'directory' && saveAs !== 'store') {
    throw new Error(`save as: expected directory or store, got "${saveAs}"`);
  }
  if (saveAs === 'directory') return undefined;
  const metric = config.metric || 'averagePrecision';
  if (!(STORE_METRICS as readonly string[]).includes(metric)) {
    throw new Error(`metric: expected one of ${STORE_METRICS.join(', ')}, got "${metric}"`);
  }
  return {
    keep: numberSetting(
      config.keep ?? 5,
      'versions kept',
      (v) => Number.isInteger(v) && v >= 1,
      'an integer >= 1',
    ),
    metric: metric as StoreMetric,
  };
}

/** A model store may start in a missing or empty folder, or one that is a store already. */
async function checkStoreTarget(dir: string): Promise<void> {
  if (await isModelStore(dir)) return;
  const entries = await readdir(dir).catch(() => [] as string[]);
  if (entries.length > 0) {
    throw new Error(
      `${dir}: the folder is not empty and is no model store (no versions folder or ` +
        `current.json); choose another folder for the model store`,
    );
  }
}

/** A checkbox setting; hand-written flows may hold it as text. */
function flag(value: boolean | string | undefined): boolean {
  return value === true || value === 'true';
}

/** The model directory: from the settings, or from the message only when the user chose `msg`. */
function modelDirOf(RED: NodeAPI, node: Node, config: TrainerConfig, msg: NodeMessage): string {
  const type = config.modelDirType || 'str';
  const setting = config.modelDir ?? DEFAULT_MODEL_DIR;
  const value: unknown =
    type === 'str' ? setting : RED.util.evaluateNodeProperty(setting, type, node, msg);
  if (typeof value !== 'string' || value.trim() === '') {
    const where = type === 'str' ? 'model directory' : `model directory (${type} ${setting})`;
    throw new Error(
      `${where}: expected the path of a folder to save the model in, got ` +
        `${value === '' ? 'an empty text' : typeof value}`,
    );
  }
  return resolvePath(RED, node, value.trim());
}

/**
 * The run's settings as `Parameter,Value` rows: the trainer's own, then what the data set records
 * of the stages before it (split, upsampling, mixup, smoothing); a stage left out of the flow
 * keeps its "off" default.
 */
function hyperparametersOf(
  options: TrainOptions,
  data: DataSet,
  backend: string,
): Record<string, string | number | boolean> {
  const table = settingsTable({ ...DEFAULT_SETTINGS, ...options, seed: data.seed }, backend);
  // A data set made outside the loader carries no split: leave it out rather than guess.
  if (!('Validation split' in data.settings)) delete table['Validation split'];
  return { ...table, ...data.settings };
}

/** Output 1's payload: everything about the saved model that a message may carry (no tensors). */
function resultOf(
  saved: SavedResult,
  hyperparameters: Record<string, string | number | boolean>,
  store?: string,
): Record<string, unknown> {
  const { result, data, evaluation } = saved;
  const reports = Object.entries(evaluation.reports).filter(
    (entry): entry is [string, EvaluationReport] => entry[1] !== undefined,
  );
  const predictions = Object.entries(evaluation.predictions).filter(([, p]) => p !== undefined);
  // A model store's root: predict nodes given it follow whichever version is current.
  const where =
    store === undefined || saved.promotion === undefined
      ? { modelDir: saved.dir }
      : {
          modelDir: store,
          versionDir: saved.dir,
          version: saved.promotion.version,
          promoted: saved.promotion.promoted,
          promotion: { ...saved.promotion },
        };
  return {
    ...where,
    labels: [...data.labels],
    dim: data.dim,
    history: result.history.map((epoch) => ({ ...epoch })),
    hyperparameters,
    stopReason: result.stopReason,
    stoppedEarly: result.stoppedEarly,
    bestEpoch: result.bestEpoch,
    epochsRun: result.epochsRun,
    seconds: result.seconds,
    backend: saved.provenance.backend,
    evaluation: Object.fromEntries(reports.map(([part, r]) => [part, reportToJson(r)])),
    thresholds: { ...evaluation.thresholds },
    predictions: Object.fromEntries(predictions),
  };
}

/** A loss in three decimals, without the leading zero: `.123`. */
function brief(value: number): string {
  return value.toFixed(3).replace(/^0\./, '.');
}

function epochLine(e: EpochStats): string {
  const optional = (name: string, v: number | undefined) =>
    v === undefined ? '' : ` ${name} ${v.toFixed(4)}`;
  return (
    `epoch ${e.epoch}/${e.epochs} loss ${e.loss.toFixed(4)}` +
    optional('val_loss', e.valLoss) +
    optional('val_AUPRC', e.valAuprc) +
    ` ${e.seconds.toFixed(1)}s`
  );
}
