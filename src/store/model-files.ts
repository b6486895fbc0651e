import * as tf from '@tensorflow/tfjs';
import { readFile, writeFile } from 'fs/promises';
import { join } from 'path';

/** File names of a TF.js layers model, as tfjs-node's `file://` handler writes them. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/**
 * Writes a layers model as `model.json` + `weights.bin` into `dir`. Plain `@tensorflow/tfjs` has
 * no file handler in Node, so the files are written here, in the format `tf.loadLayersModel`
 * reads from a URL or, with tfjs-node, from `file://`.
 */
export async function writeLayersModel(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const json = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, MODEL_JSON), JSON.stringify(json));
      await writeFile(join(dir, WEIGHTS_BIN), Buffer.from(weights));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

interface ModelJson {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/** Reads a layers model written by {@link writeLayersModel} (or by tfjs-node's file handler). */
export async function readLayersModel(dir: string): Promise<tf.LayersModel> {
  const path = join(dir, MODEL_JSON);
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    throw new Error(
      `${dir}: not a model directory (no ${MODEL_JSON}); train a model into it first`,
    );
  });
  const json = JSON.parse(text) as ModelJson;
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`${path}: not a TF.js layers model (no modelTopology or weightsManifest)`);
  }
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const buffers = await Promise.all(
    json.weightsManifest.flatMap((group) => group.paths).map((p) => readFile(join(dir, p))),
  );
  const weightData = tf.io.CompositeArrayBuffer.join(
    buffers.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer),
  );
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }),
  );
}
