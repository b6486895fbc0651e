import * as tf from '@tensorflow/tfjs';
import { setImmediate as nextTurn } from 'timers/promises';
import { Observable } from 'rxjs';
import { DataSet, Part, gatherRows, rowsOf } from '../dataset/dataset';
import { macroRankingYielding } from '../evaluate/metrics';
import { Random } from '../random';
import { EarlyStopping, MIN_DELTA } from './early-stopping';
import { FusedAdamW } from './fused-adamw';
import { LossKind, batchLoss, summedLoss } from './losses';
import { buildClassifier, denseKernels, predictScoresYielding, trainingForward } from './model';
import { learningRateAt, patienceFor } from './schedule';

/** Training hyperparameters, with BirdNET-Analyzer's defaults. */
export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  hiddenUnits: number;
  dropout: number;
  loss: LossKind;
  focalGamma: number;
  focalAlpha: number;
  /** Factor of the L2 penalty on every Dense kernel. */
  l2: number;
  /** AdamW's decoupled weight decay. */
  weightDecay: number;
  /** Train without a validation part (no early stopping; the last weights are kept). */
  allowNoValidation: boolean;
  /** Longest stretch, in milliseconds, the loop runs before it lets other work in. */
  yieldEveryMs: number;
}

export const DEFAULT_TRAIN_OPTIONS: Readonly<TrainOptions> = Object.freeze({
  epochs: 50,
  batchSize: 32,
  learningRate: 1e-4,
  hiddenUnits: 0,
  dropout: 0,
  loss: 'crossentropy',
  focalGamma: 2,
  focalAlpha: 0.25,
  l2: 1e-5,
  weightDecay: 0.004,
  allowNoValidation: false,
  yieldEveryMs: 20,
});

/** Figures of one finished epoch. Epochs count from 1. */
export interface EpochStats {
  epoch: number;
  epochs: number;
  loss: number;
  valLoss?: number;
  valAuprc?: number;
  valAuroc?: number;
  learningRate: number;
  /** Wall time of the epoch, in seconds, validation included. */
  seconds: number;
  /** True when this epoch's weights are the best so far. */
  best: boolean;
}

export interface TrainResult {
  /** The trained model with the best weights. The receiver owns it and must dispose it. */
  model: tf.LayersModel;
  history: EpochStats[];
  epochsRun: number;
  /** Epoch (from 1) whose weights the model holds. */
  bestEpoch: number;
  stoppedEarly: boolean;
  /** Why training ended, in a sentence a user can read. */
  stopReason: string;
  options: TrainOptions;
  seconds: number;
}

export type TrainEvent = ({ type: 'epoch' } & EpochStats) | { type: 'result'; result: TrainResult };

export interface TrainControl {
  /** When aborted: finish the current batch, keep the best weights so far, emit the result. */
  stop?: AbortSignal;
  /** Called once the run has ended and released its tensors, however it ended. */
  onSettled?: () => void;
}

/**
 * Trains a classifier head on a data set's train part, validating every epoch on its validation
 * part. Emits one `epoch` event per epoch and then one `result`.
 *
 * Unsubscribing cancels: the loop stops after the current batch and disposes every tensor it made,
 * the model included. The loop hands the event loop back every `yieldEveryMs`, so a host process
 * (Node-RED) stays responsive while it trains.
 */
export function trainClassifier(
  data: DataSet,
  options: Partial<TrainOptions> = {},
  control: TrainControl = {},
): Observable<TrainEvent> {
  return new Observable<TrainEvent>((subscriber) => {
    const state = { cancelled: false };
    Promise.resolve()
      .then(() =>
        runTraining(data, resolveOptions(options), control, state, (e) => subscriber.next(e)),
      )
      .then(
        () => subscriber.complete(),
        (err: unknown) => subscriber.error(err),
      )
      .finally(() => control.onSettled?.());
    return () => {
      state.cancelled = true;
    };
  });
}

export function resolveOptions(options: Partial<TrainOptions>): TrainOptions {
  const o = { ...DEFAULT_TRAIN_OPTIONS, ...dropUndefined(options) };
  const check = (ok: boolean, field: string, expected: string, value: unknown) => {
    if (!ok) throw new Error(`training: ${field} must be ${expected}, got ${String(value)}`);
  };
  check(Number.isInteger(o.epochs) && o.epochs >= 1, 'epochs', 'an integer >= 1', o.epochs);
  check(
    Number.isInteger(o.batchSize) && o.batchSize >= 1,
    'batch size',
    'an integer >= 1',
    o.batchSize,
  );
  check(o.learningRate > 0 && o.learningRate < 10, 'learning rate', 'in (0, 10)', o.learningRate);
  check(
    Number.isInteger(o.hiddenUnits) && o.hiddenUnits >= 0,
    'hidden units',
    'an integer >= 0',
    o.hiddenUnits,
  );
  check(o.dropout >= 0 && o.dropout < 1, 'dropout', 'in [0, 1)', o.dropout);
  check(o.loss === 'crossentropy' || o.loss === 'focal', 'loss', 'crossentropy or focal', o.loss);
  check(
    o.focalGamma >= 0 && Number.isFinite(o.focalGamma),
    'focal loss gamma',
    '>= 0',
    o.focalGamma,
  );
  check(o.focalAlpha >= 0 && o.focalAlpha <= 1, 'focal loss alpha', 'in [0, 1]', o.focalAlpha);
  check(o.l2 >= 0, 'L2 factor', '>= 0', o.l2);
  check(o.weightDecay >= 0, 'weight decay', '>= 0', o.weightDecay);
  return o;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A data set without validation rows given to a trainer that was not allowed to train so. */
export class NoValidationError extends Error {
  /**
   * @param split the data set's validation split, when known
   * @param allow how the caller allows training without validation
   */
  constructor(
    readonly split: number | undefined,
    allow = 'allow training without validation',
  ) {
    super(
      split !== undefined && split > 0
        ? `training: the validation split of ${split} left no validation rows: every class has a ` +
            'single recording (or file), which stays in training; give classes two or more to ' +
            `hold one out (or ${allow})`
        : 'training: the data set has no validation rows; set a validation split above 0 ' +
            `(or ${allow})`,
    );
  }
}

async function runTraining(
  data: DataSet,
  o: TrainOptions,
  control: TrainControl,
  state: { cancelled: boolean },
  emit: (event: TrainEvent) => void,
): Promise<void> {
  const started = Date.now();
  const classes = data.labels.length;
  // Batches are picked from the data set's own rows; the validation rows are copied out once,
  // a slice at a time so that the event loop keeps turning.
  const train = rowsOf(data, Part.train);
  const validationRows = rowsOf(data, Part.validation);
  const validation = { ...(await gatherRows(data, validationRows)), rows: validationRows };
  if (train.length === 0) throw new Error('training: the data set has no training rows');
  if (validation.rows.length === 0 && !o.allowNoValidation) {
    const split = data.settings['Validation split'];
    throw new NoValidationError(typeof split === 'number' ? split : undefined);
  }

  const random = new Random(data.seed);
  const shuffle = random.derive('shuffle');
  const dropoutSeeds = random.derive('dropout');
  const lossOptions = { kind: o.loss, gamma: o.focalGamma, alpha: o.focalAlpha };
  const model = buildClassifier({
    dim: data.dim,
    classes,
    hiddenUnits: o.hiddenUnits,
    dropout: o.dropout,
    seed: random.derive('init').int31(),
  });
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const kernels = denseKernels(model);
  const optimizer = new FusedAdamW(variables, {
    weightDecay: o.weightDecay,
    l2: o.l2,
    penalised: kernels,
  });
  const stopping = new EarlyStopping(patienceFor(o.epochs));
  let best: tf.Tensor[] | undefined;
  const history: EpochStats[] = [];
  let stopReason = `completed all ${o.epochs} epochs`;
  let stoppedEarly = false;
  let lastYield = Date.now();
  const keepModel = { value: false };

  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const epochStart = Date.now();
      const learningRate = learningRateAt(epoch, o.epochs, o.learningRate);
      const order = shuffle.shuffle(train.map((_, i) => i));
      let lossSum = 0;

      for (let b = 0; b < order.length; b += o.batchSize) {
        const batch = order.slice(b, b + o.batchSize).map((i) => train[i]);
        let penalty = 0;
        const loss = tf.tidy(() => {
          const x = tf.tensor2d(pick(data.x, batch, data.dim), [batch.length, data.dim]);
          const y = tf.tensor2d(pick(data.y, batch, classes), [batch.length, classes]);
          const { value, grads } = tf.variableGrads(() => {
            const probs = trainingForward(model, x, () => dropoutSeeds.int31());
            return batchLoss(probs, y, lossOptions);
          }, variables);
          // The optimizer adds the L2 penalty's gradient and returns the penalty.
          penalty = optimizer.apply(
            variables.map((v) => grads[v.name]),
            learningRate,
          );
          return value;
        });
        lossSum += ((await loss.data())[0] + penalty) * batch.length;
        loss.dispose();

        if (state.cancelled || control.stop?.aborted) break;
        if (Date.now() - lastYield >= o.yieldEveryMs) {
          await nextTurn();
          lastYield = Date.now();
        }
      }
      if (state.cancelled) return;
      if (control.stop?.aborted) {
        stopReason = `stopped on request during epoch ${epoch + 1}`;
        stoppedEarly = true;
        break;
      }

      const stats: EpochStats = {
        epoch: epoch + 1,
        epochs: o.epochs,
        loss: lossSum / order.length,
        learningRate,
        seconds: 0,
        best: false,
      };
      let stop = false;
      if (validation.rows.length > 0) {
        const scores = await predictScoresYielding(model, validation.x, data.dim);
        stats.valLoss = validationLoss(scores, validation.y, classes, lossOptions);
        await nextTurn();
        const ranking = await macroRankingYielding(validation.y, scores, validation.rows.length);
        stats.valAuprc = ranking.auprc;
        stats.valAuroc = ranking.auroc;
        const step = stopping.update(epoch, stats.valLoss);
        stats.best = step.improved;
        stop = step.stop;
      } else {
        stats.best = true;
      }
      if (stats.best) {
        best?.forEach((t) => t.dispose());
        best = variables.map((v) => tf.clone(v));
      }
      stats.seconds = (Date.now() - epochStart) / 1000;
      history.push(stats);
      emit({ type: 'epoch', ...stats });
      if (state.cancelled) return;

      if (stop) {
        stoppedEarly = true;
        stopReason =
          `stopped early at epoch ${epoch + 1}: validation loss did not improve by more than ` +
          `${MIN_DELTA} for ${stopping.patience} epochs (best ${stopping.best.toFixed(4)} ` +
          `at epoch ${stopping.bestEpoch + 1})`;
        break;
      }
    }

    if (best !== undefined) variables.forEach((v, i) => v.assign(best![i]));
    const bestEpoch =
      validation.rows.length > 0 ? stopping.bestEpoch + 1 : (history.at(-1)?.epoch ?? 0);
    keepModel.value = history.length > 0;
    if (!keepModel.value) throw new Error('training: stopped before the first epoch finished');
    emit({
      type: 'result',
      result: {
        model,
        history,
        epochsRun: history.length,
        bestEpoch,
        stoppedEarly,
        stopReason,
        options: o,
        seconds: (Date.now() - started) / 1000,
      },
    });
  } finally {
    best?.forEach((t) => t.dispose());
    optimizer.dispose();
    if (!keepModel.value) model.dispose();
  }
}

/** Copies rows `indices` of a `[rows, width]` array into a new array. */
function pick(values: Float32Array, indices: readonly number[], width: number): Float32Array {
  const out = new Float32Array(indices.length * width);
  indices.forEach((r, i) => out.set(values.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

function validationLoss(
  scores: Float32Array,
  y: Float32Array,
  classes: number,
  options: Parameters<typeof summedLoss>[2],
): number {
  const rows = y.length / classes;
  return tf.tidy(() => {
    const probs = tf.tensor2d(scores, [rows, classes]);
    const labels = tf.tensor2d(y, [rows, classes]);
    return summedLoss(probs, labels, options).dataSync()[0] / rows;
  });
}
