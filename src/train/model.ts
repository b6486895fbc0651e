import * as tf from '@tensorflow/tfjs';
import { setImmediate as nextTurn } from 'timers/promises';

export interface ClassifierShape {
  /** Embedding length. */
  dim: number;
  classes: number;
  /** 0: a single Dense layer; h > 0: Dense(h, relu) before the output layer. */
  hiddenUnits: number;
  /** Dropout rate before each Dense layer, in [0, 1). */
  dropout: number;
  /** Seeds the weight initializers. */
  seed: number;
}

/**
 * The classification head: [Dropout] -> Dense(K, glorot uniform) -> sigmoid, or with hidden
 * units [Dropout] -> Dense(h, relu, he normal) -> [Dropout] -> Dense(K) -> sigmoid.
 * Input `[rows, dim]`, output `[rows, classes]` probabilities.
 */
export function buildClassifier(shape: ClassifierShape): tf.Sequential {
  const { dim, classes, hiddenUnits, dropout, seed } = shape;
  const model = tf.sequential({ name: 'custom_classifier' });
  const addDropout = (name: string) => {
    if (dropout > 0) model.add(tf.layers.dropout({ rate: dropout, name }));
  };
  model.add(tf.layers.inputLayer({ inputShape: [dim], name: 'embedding' }));
  addDropout('dropout_input');
  if (hiddenUnits > 0) {
    model.add(
      tf.layers.dense({
        units: hiddenUnits,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed }),
        name: 'hidden',
      }),
    );
    addDropout('dropout_hidden');
  }
  model.add(
    tf.layers.dense({
      units: classes,
      activation: 'sigmoid',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      name: 'output',
    }),
  );
  return model;
}

/** The Dense kernels of a model, for the L2 penalty. */
export function denseKernels(model: tf.LayersModel): tf.Variable[] {
  return model.layers
    .filter((layer) => layer.getClassName() === 'Dense')
    .map((layer) => layer.trainableWeights[0].read() as tf.Variable);
}

/**
 * The forward pass while training: dropout draws its masks from `nextSeed`, so a seeded run
 * repeats, which the layer's own dropout does not guarantee.
 */
export function trainingForward(model: tf.LayersModel, x: tf.Tensor, nextSeed: () => number) {
  let h = x;
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    if (layer.getClassName() === 'Dropout') {
      const rate = (layer.getConfig() as { rate: number }).rate;
      h = tf.dropout(h, rate, undefined, nextSeed());
    } else {
      h = layer.apply(h) as tf.Tensor;
    }
  }
  return h;
}

/** Scores `[rows, dim]` embeddings in chunks; returns `[rows, classes]` probabilities. */
export function predictScores(
  model: tf.LayersModel,
  x: Float32Array,
  dim: number,
  chunk = 2048,
): Float32Array {
  const scores = scoresFor(model, x, dim);
  for (let start = 0; start < scores.rows; start += chunk) {
    predictChunk(model, x, dim, start, Math.min(scores.rows, start + chunk), scores);
  }
  return scores.out;
}

/**
 * {@link predictScores} that hands the event loop back between chunks: a host process (Node-RED)
 * stays responsive while a large validation part is scored.
 */
export async function predictScoresYielding(
  model: tf.LayersModel,
  x: Float32Array,
  dim: number,
  chunk = 512,
): Promise<Float32Array> {
  const scores = scoresFor(model, x, dim);
  for (let start = 0; start < scores.rows; start += chunk) {
    await nextTurn();
    predictChunk(model, x, dim, start, Math.min(scores.rows, start + chunk), scores);
  }
  return scores.out;
}

/** `[rows, classes]` scores being filled in. */
interface Scores {
  out: Float32Array;
  rows: number;
  classes: number;
}

function scoresFor(model: tf.LayersModel, x: Float32Array, dim: number): Scores {
  const rows = x.length / dim;
  const classes = (model.outputs[0].shape[1] as number) ?? 0;
  return { out: new Float32Array(rows * classes), rows, classes };
}

/** Scores rows `start` to `end` (exclusive) into their place in `scores.out`. */
function predictChunk(
  model: tf.LayersModel,
  x: Float32Array,
  dim: number,
  start: number,
  end: number,
  scores: Scores,
): void {
  const chunk = tf.tidy(() => {
    const input = tf.tensor2d(x.subarray(start * dim, end * dim), [end - start, dim]);
    // One batch per chunk: predict's default of 32 rows would slice the chunk into copies.
    return model.predict(input, { batchSize: end - start }) as tf.Tensor;
  });
  scores.out.set(chunk.dataSync(), start * scores.classes);
  chunk.dispose();
}
