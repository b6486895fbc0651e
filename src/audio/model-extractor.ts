/**
 * An extractor backed by a TF.js model that the user points at: a layers model (what
 * `model.save()` and the Keras converter write) or a graph model (what the TensorFlow converter
 * writes from a SavedModel). The model takes raw audio, `[batch, samples]` or
 * `[batch, samples, 1]` float32, and one of its layers or nodes gives the embedding.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import { readFile } from 'fs/promises';
import { createRequire } from 'module';
import { dirname, join } from 'path';
import { Extractor } from './extractor';

export interface ModelExtractorOptions {
  /** Path of the model's `model.json`; the weight files it lists are read from its folder. */
  modelPath: string;
  /** Rate of the signal the model takes, in Hz; default 48000. */
  sampleRate?: number;
  /** Length of the segments the model takes, in seconds; default 3. */
  inputSeconds?: number;
  /**
   * What gives the embedding: for a layers model the name of a layer, for a graph model the name
   * of an output (`Identity_1`, a signature key) or of any node (`name` or `name:index`).
   * Default: the model's first output.
   */
  output?: string;
  /**
   * A module that registers the model's custom layer classes with
   * `tf.serialization.registerClass` when it is loaded; resolved as a `require` from the working
   * directory would resolve it (a path or a package name). Its source is part of the id, since
   * the layers' code shapes the embedding.
   */
  customLayers?: string;
  /** Segments per call to the model; default 16. */
  batchSize?: number;
}

/** Rate and segment length a model takes unless told otherwise (BirdNET's). */
export const DEFAULT_SAMPLE_RATE = 48000;
export const DEFAULT_INPUT_SECONDS = 3;
const DEFAULT_BATCH_SIZE = 16;

/** Names of a graph's nodes that an error lists before it says how many more there are. */
const LISTED_NODES = 40;

type ModelKind = 'layers-model' | 'graph-model';

/** The files of a model as read from disk, before TF.js sees them. */
interface ModelFiles {
  json: tf.io.ModelJSON;
  kind: ModelKind;
  /** The weight shards, in manifest order. */
  shards: Buffer[];
  /** sha256 over model.json, the shards and the custom layers' source, in hex. */
  hash: string;
}

/** A loaded model reduced to what embedding needs. */
interface Runner {
  /** The resolved output name, as the id names it. */
  output: string;
  /** Length of the embedding when the model's output shape tells it. */
  dim?: number;
  /** Input shape without the batch dimension, unknown sizes as null. */
  inputShape: (number | null)[];
  /**
   * The model's output for a batch, flattened to `[batch, dim]`: a tensor of its own, even where
   * the output is the input itself or a weight; the caller disposes it.
   */
  run(x: tf.Tensor): Promise<tf.Tensor>;
  dispose(): void;
}

/**
 * Loads the TF.js model at `options.modelPath` as an embedding extractor.
 *
 * The id is `tfjs-model:<hash>:<output>:<sampleRate>:<inputSeconds>`, where the hash is the first
 * 16 hex digits of a sha256 over model.json, its weight files and the custom layers' module, so an
 * embedding cache keyed by it misses when any of them changes.
 *
 * @returns an extractor whose `embed` takes segments of `sampleRate * inputSeconds` samples and
 *   gives `[segments, dim]` float32, dim being the size of the output without its batch
 *   dimension; the caller disposes it
 */
export async function modelExtractor(options: ModelExtractorOptions): Promise<Extractor> {
  const modelPath = options.modelPath;
  const sampleRate = options.sampleRate ?? DEFAULT_SAMPLE_RATE;
  const inputSeconds = options.inputSeconds ?? DEFAULT_INPUT_SECONDS;
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const samples = segmentSamples(modelPath, sampleRate, inputSeconds);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(
      `${modelPath}: batchSize: expected a whole number of 1 or more, got ${batchSize}`,
    );
  }

  const customSource = options.customLayers ? loadCustomLayers(options.customLayers) : undefined;
  const files = await readModelFiles(modelPath, customSource);
  const runner =
    files.kind === 'layers-model'
      ? await layersRunner(modelPath, files, options)
      : await graphRunner(modelPath, files, options.output);

  let shape: number[];
  try {
    shape = batchShape(modelPath, runner.inputShape, samples, sampleRate, inputSeconds);
  } catch (err) {
    runner.dispose();
    throw err;
  }

  // An empty call still says the vector length, once the model or an earlier call has told it.
  let seenDim: number | undefined;
  return {
    id: `tfjs-model:${files.hash.slice(0, 16)}:${runner.output}:${sampleRate}:${inputSeconds}`,
    sampleRate,
    segmentSeconds: inputSeconds,
    async embed(segments) {
      segments.forEach((s, i) => {
        if (s.length !== samples) {
          throw new Error(
            `${modelPath}: segment ${i} has ${s.length} samples; the model takes ${samples} ` +
              `(${sampleRate} Hz x ${inputSeconds} s)`,
          );
        }
      });
      const rows: Float32Array[] = [];
      let dim = runner.dim ?? seenDim ?? 0;
      for (let start = 0; start < segments.length; start += batchSize) {
        const batch = segments.slice(start, start + batchSize);
        const values = await embedBatch(runner, batch, shape, samples);
        dim = values.length / batch.length;
        rows.push(values);
      }
      seenDim = dim;
      const x = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
      let offset = 0;
      for (const r of rows) {
        x.set(r, offset);
        offset += r.length;
      }
      return { x, dim };
    },
    dispose: () => runner.dispose(),
  };
}

/** One batch through the model, flattened to `[batch.length * dim]`. */
async function embedBatch(
  runner: Runner,
  batch: readonly Float32Array[],
  shape: number[],
  samples: number,
): Promise<Float32Array> {
  const stacked = new Float32Array(batch.length * samples);
  batch.forEach((s, i) => stacked.set(s, i * samples));
  const input = tf.tensor(stacked, [batch.length, ...shape]);
  let output: tf.Tensor;
  try {
    output = await runner.run(input);
  } finally {
    input.dispose();
  }
  try {
    return (await output.data()) as Float32Array;
  } finally {
    output.dispose();
  }
}

/** `sampleRate * inputSeconds`, which must be a whole number of samples. */
function segmentSamples(modelPath: string, sampleRate: number, inputSeconds: number): number {
  if (!(sampleRate > 0) || !(inputSeconds > 0)) {
    throw new Error(
      `${modelPath}: sampleRate and inputSeconds must be positive, got ${sampleRate} Hz and ` +
        `${inputSeconds} s`,
    );
  }
  const samples = Math.round(sampleRate * inputSeconds);
  if (Math.abs(samples - sampleRate * inputSeconds) > 1e-6) {
    throw new Error(
      `${modelPath}: sampleRate * inputSeconds = ${sampleRate} * ${inputSeconds} is not a whole ` +
        `number of samples`,
    );
  }
  return samples;
}

/**
 * The shape of one segment as the model takes it: its input shape with the one unknown size, if
 * any, filled in so the sizes multiply to `samples`.
 */
function batchShape(
  modelPath: string,
  inputShape: (number | null)[],
  samples: number,
  sampleRate: number,
  inputSeconds: number,
): number[] {
  const shown = `[batch, ${inputShape.map((d) => d ?? 'null').join(', ')}]`;
  if (inputShape.length === 0) {
    throw new Error(
      `${modelPath}: the model's input is ${shown}; expected [batch, samples] or ` +
        `[batch, samples, 1]`,
    );
  }
  const known = inputShape.reduce<number>((p, d) => p * (d ?? 1), 1);
  const unknown = inputShape.filter((d) => d === null).length;
  const settings = `sampleRate * inputSeconds = ${sampleRate} * ${inputSeconds} = ${samples}`;
  if (unknown === 0 && known !== samples) {
    throw new Error(
      `${modelPath}: the model takes ${known} samples per segment (input ${shown}), but ` +
        `${settings}; set them to the rate and segment length the model was made for`,
    );
  }
  if (unknown > 1 || samples % known !== 0) {
    throw new Error(
      `${modelPath}: cannot fit segments of ${samples} samples (${settings}) to the model's ` +
        `input ${shown}`,
    );
  }
  return inputShape.map((d) => d ?? samples / known);
}

/**
 * Loads the custom layers' module so its classes are registered before the model is read.
 *
 * @returns the module's source, for the id
 */
function loadCustomLayers(customLayers: string): Buffer {
  const load = createRequire(join(process.cwd(), 'noop.js'));
  let resolved: string;
  try {
    resolved = load.resolve(customLayers);
    load(resolved);
  } catch (err) {
    throw new Error(
      `customLayers: cannot load ${customLayers} (from ${process.cwd()}): ${message(err)}`,
    );
  }
  return readFileSync(resolved);
}

async function readModelFiles(modelPath: string, customSource?: Buffer): Promise<ModelFiles> {
  const text = await readFile(modelPath).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      err.code === 'ENOENT'
        ? `${modelPath}: no such file; expected the model.json of a TF.js model`
        : `${modelPath}: cannot read: ${err.message}`,
    );
  });
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(text.toString('utf8')) as tf.io.ModelJSON;
  } catch (err) {
    throw new Error(`${modelPath}: not a TF.js model: not JSON (${message(err)})`);
  }
  const kind = modelKind(json);
  if (kind === undefined) {
    throw new Error(
      `${modelPath}: not a TF.js model: expected format "layers-model" or "graph-model" ` +
        `(or a modelTopology with class_name or node)`,
    );
  }

  const manifest = Array.isArray(json.weightsManifest) ? json.weightsManifest : [];
  const folder = dirname(modelPath);
  const shards = await Promise.all(
    manifest
      .flatMap((group) => group.paths)
      .map((p) =>
        readFile(join(folder, p)).catch((err: NodeJS.ErrnoException) => {
          throw new Error(
            `${modelPath}: cannot read weight file ${p} that it lists ` +
              `(${err.code === 'ENOENT' ? 'no such file' : err.message}); expected it beside ` +
              `model.json`,
          );
        }),
      ),
  );

  const hash = createHash('sha256').update(text);
  shards.forEach((s) => hash.update(s));
  if (customSource) hash.update(customSource);
  return { json, kind, shards, hash: hash.digest('hex') };
}

/** Which kind of model a model.json holds, from its format or else the shape of its topology. */
function modelKind(json: tf.io.ModelJSON): ModelKind | undefined {
  if (json === null || typeof json !== 'object') return undefined;
  if (json.format === 'layers-model' || json.format === 'graph-model') return json.format;
  const topology = json.modelTopology as Record<string, unknown> | undefined;
  if (topology === null || typeof topology !== 'object') return undefined;
  if ('class_name' in topology || 'model_config' in topology) return 'layers-model';
  if (Array.isArray(topology.node)) return 'graph-model';
  return undefined;
}

/** An IO handler that hands TF.js the files already read, since plain TF.js cannot read disks. */
function memoryHandler(files: ModelFiles): tf.io.IOHandler {
  const manifest = Array.isArray(files.json.weightsManifest) ? files.json.weightsManifest : [];
  const weightSpecs = manifest.flatMap((group) => group.weights);
  const weightData = tf.io.CompositeArrayBuffer.join(
    files.shards.map(
      (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer,
    ),
  );
  const artifacts = tf.io.getModelArtifactsForJSONSync(files.json, weightSpecs, weightData);
  return { load: () => Promise.resolve(artifacts) };
}

async function layersRunner(
  modelPath: string,
  files: ModelFiles,
  options: ModelExtractorOptions,
): Promise<Runner> {
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(memoryHandler(files));
  } catch (err) {
    throw layersLoadError(modelPath, err, options.customLayers);
  }

  try {
    if (model.inputs.length !== 1) {
      throw new Error(`${modelPath}: the model has ${model.inputs.length} inputs; expected one`);
    }
    const { name, embedding } = layersOutput(modelPath, model, options.output);
    const what = `${modelPath}: the output of layer "${name}"`;
    const inputShape = model.inputs[0].shape.slice(1);
    const outputShape = embedding.outputs[0].shape.slice(1);
    return {
      output: name,
      dim: outputShape.every((d) => d !== null)
        ? outputShape.reduce((p, d) => p * d, 1)
        : undefined,
      inputShape,
      run: (x) =>
        Promise.resolve(
          tf.tidy(() => flatten(embedding.predict(x) as tf.Tensor, x.shape[0], what)),
        ),
      // The embedding model shares the loaded model's layers and owns no weights of its own.
      dispose: () => model.dispose(),
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** The model that ends at the named layer (or at the first output), and that layer's name. */
function layersOutput(modelPath: string, model: tf.LayersModel, output?: string) {
  if (output === undefined) {
    const first = model.outputs[0];
    const embedding =
      model.outputs.length === 1 ? model : tf.model({ inputs: model.inputs, outputs: first });
    return { name: model.outputNames[0], embedding };
  }
  const layer = model.layers.find((l) => l.name === output);
  if (layer === undefined) {
    throw new Error(
      `${modelPath}: no layer named "${output}"; the model's layers are: ` +
        model.layers.map((l) => l.name).join(', '),
    );
  }
  let symbolic: tf.SymbolicTensor | tf.SymbolicTensor[];
  try {
    symbolic = layer.output;
  } catch (err) {
    throw new Error(`${modelPath}: cannot take the output of layer "${output}": ${message(err)}`);
  }
  const outputs = Array.isArray(symbolic) ? symbolic[0] : symbolic;
  return { name: output, embedding: tf.model({ inputs: model.inputs, outputs }) };
}

/** A load error that says which file and, for a missing class, how to register it. */
function layersLoadError(modelPath: string, err: unknown, customLayers?: string): Error {
  const text = message(err);
  const unknown = /Unknown layer: ([^\s.]+)/.exec(text);
  if (unknown === null) return new Error(`${modelPath}: cannot load the layers model: ${text}`);
  const hint = customLayers
    ? `the customLayers module ${customLayers} was loaded but did not register it; it must ` +
      `call tf.serialization.registerClass on the @tensorflow/tfjs at ` +
      `${dirname(require.resolve('@tensorflow/tfjs/package.json'))}`
    : `set customLayers to a module that registers it with tf.serialization.registerClass`;
  return new Error(
    `${modelPath}: the model uses layer class ${unknown[1]}, which is not registered; ${hint}`,
  );
}

async function graphRunner(modelPath: string, files: ModelFiles, output?: string): Promise<Runner> {
  let model: tf.GraphModel;
  try {
    model = await tf.loadGraphModel(memoryHandler(files));
  } catch (err) {
    throw new Error(`${modelPath}: cannot load the graph model: ${message(err)}`);
  }

  try {
    if (model.inputs.length !== 1) {
      throw new Error(`${modelPath}: the model has ${model.inputs.length} inputs; expected one`);
    }
    const name = output ?? model.outputNodes[0];
    checkGraphOutput(modelPath, files.json, model, name);
    const what = `${modelPath}: the output "${name}"`;
    const shape = model.inputs[0].shape;
    // An input without a shape takes whatever it is given; segments then go in as [batch, samples].
    const inputShape = !shape?.length ? [null] : shape.slice(1).map((d) => (d < 0 ? null : d));
    // A graph with control flow or dynamic shapes runs only asynchronously, and TF.js warns on
    // every asynchronous run of a graph that needs none, so the first failure picks the way.
    let dynamic = false;
    const weights = new Set(Object.values(model.weights).flat());
    return {
      output: name,
      inputShape,
      async run(x) {
        if (!dynamic) {
          try {
            return tf.tidy(() => flatten(model.execute(x, name) as tf.Tensor, x.shape[0], what));
          } catch (err) {
            if (!/executeAsync/.test(message(err))) throw err;
            dynamic = true;
          }
        }
        const y = (await model.executeAsync(x, name)) as tf.Tensor;
        try {
          return tf.tidy(() => flatten(y, x.shape[0], what));
        } finally {
          if (y !== x && !weights.has(y)) y.dispose();
        }
      },
      dispose: () => model.dispose(),
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** Fails, listing what there is, unless `name` is an output or a node of the graph. */
function checkGraphOutput(
  modelPath: string,
  json: tf.io.ModelJSON,
  model: tf.GraphModel,
  name: string,
): void {
  const nodes = ((json.modelTopology as { node?: { name: string }[] }).node ?? []).map(
    (n) => n.name,
  );
  const bare = name.replace(/:\d+$/, '');
  if (model.outputNodes.includes(name) || nodes.includes(bare)) return;
  const listed = nodes.slice(0, LISTED_NODES).join(', ');
  const more = nodes.length > LISTED_NODES ? ` and ${nodes.length - LISTED_NODES} more` : '';
  throw new Error(
    `${modelPath}: no output or node named "${name}"; the model's outputs are: ` +
      `${model.outputNodes.join(', ')}; its nodes: ${listed}${more}`,
  );
}

/**
 * `[batch, ...]` to `[batch, dim]`, as a new tensor that shares the data.
 *
 * @param what the file and output, for the error when the output has no row per segment
 */
function flatten(y: tf.Tensor, batch: number, what: string): tf.Tensor {
  if (y.rank === 0 || y.shape[0] !== batch) {
    throw new Error(
      `${what} has shape [${y.shape.join(', ')}] for ${batch} segments; expected one row per ` +
        `segment, [${batch}, ...]`,
    );
  }
  return y.reshape([batch, -1]);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
