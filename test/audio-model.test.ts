import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'fs/promises';
import { createRequire } from 'module';
import { tmpdir } from 'os';
import { join } from 'path';
import { WaveFile } from 'wavefile';
import { modelExtractor } from '../src/audio/model-extractor';
import { loadDataSet } from '../src/dataset/load';
import { MODEL_JSON, writeLayersModel } from '../src/store/model-files';
import { refusal } from './helpers';

const RATE = 8000;
const SECONDS = 0.5;
const SAMPLES = RATE * SECONDS;
const FRAME = 1000;
const FRAMES = SAMPLES / FRAME;

/** `embedding` Dense: kernel `[FRAMES, 3]` row-major, bias `[3]`. */
const EMBED_KERNEL = [0.5, -1, 2, 1, 0.25, -0.5, -2, 1, 0.75, 0.1, 0.2, 0.3];
const EMBED_BIAS = [0.1, -0.2, 0.3];
/** `head` Dense: kernel `[3, 2]` row-major, bias `[2]`. */
const HEAD_KERNEL = [1, -1, 0.5, 2, -0.25, 0.5];
const HEAD_BIAS = [0.05, -0.05];

/**
 * A custom layer as a user would write one: `[batch, samples]` to `[batch, frames]`, the mean
 * square of each frame of `frameLength` samples.
 */
function customLayerSource(tfjsPath: string): string {
  return `'use strict';
const tf = require(${JSON.stringify(tfjsPath)});

class FrameEnergy extends tf.layers.Layer {
  constructor(config) {
    super(config);
    this.frameLength = config.frameLength;
  }
  computeOutputShape(inputShape) {
    return [inputShape[0], Math.floor(inputShape[1] / this.frameLength)];
  }
  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const frames = Math.floor(x.shape[1] / this.frameLength);
      return x
        .slice([0, 0], [-1, frames * this.frameLength])
        .reshape([-1, frames, this.frameLength])
        .square()
        .mean(-1);
    });
  }
  getConfig() {
    return { ...super.getConfig(), frameLength: this.frameLength };
  }
}
FrameEnergy.className = 'FrameEnergy';
tf.serialization.registerClass(FrameEnergy);

module.exports = { FrameEnergy };
`;
}

type LayerClass = new (config: { frameLength: number; name: string }) => tf.layers.Layer;

/** A constant signal and a sine whose amplitude grows, so every frame's energy differs. */
function segments(): Float32Array[] {
  const constant = new Float32Array(SAMPLES).fill(0.5);
  const sine = Float32Array.from({ length: SAMPLES }, (_, i) => {
    return ((0.9 * i) / SAMPLES) * Math.sin((2 * Math.PI * 440 * i) / RATE);
  });
  return [constant, sine];
}

/** Mean square of each frame of `FRAME` samples, in float64. */
function frameEnergies(signal: Float32Array): number[] {
  return Array.from({ length: FRAMES }, (_, f) => {
    let sum = 0;
    for (let i = f * FRAME; i < (f + 1) * FRAME; i++) sum += signal[i] ** 2;
    return sum / FRAME;
  });
}

/** `x W + b` for one row: W `[x.length, b.length]` row-major. */
function dense(x: number[], kernel: number[], bias: number[]): number[] {
  return bias.map((b, j) => x.reduce((sum, v, i) => sum + v * kernel[i * bias.length + j], b));
}

function expectClose(actual: ArrayLike<number>, expected: number[], tolerance = 1e-5): void {
  expect(actual.length).to.equal(expected.length);
  expected.forEach((e, i) => {
    expect(actual[i], `value ${i}`).to.be.closeTo(e, tolerance);
  });
}

/** Sets a Dense layer's kernel and bias from plain arrays. */
function setDense(layer: tf.layers.Layer, kernel: number[], bias: number[]): void {
  tf.tidy(() => {
    layer.setWeights([
      tf.tensor2d(kernel, [kernel.length / bias.length, bias.length]),
      tf.tensor1d(bias),
    ]);
  });
}

describe('model extractor', () => {
  let root: string;
  let modulePath: string;
  let FrameEnergy: LayerClass;

  /** input -> FrameEnergy -> Dense 'embedding' (3) -> Dense 'head' (2), saved into `dir`. */
  async function saveEnergyModel(dir: string, embedBias = EMBED_BIAS): Promise<string> {
    await mkdir(dir, { recursive: true });
    const input = tf.input({ shape: [SAMPLES], name: 'audio' });
    const energy = new FrameEnergy({ frameLength: FRAME, name: 'frame_energy' });
    const embedding = tf.layers.dense({ units: 3, name: 'embedding' });
    const head = tf.layers.dense({ units: 2, name: 'head' });
    const output = head.apply(embedding.apply(energy.apply(input))) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output, name: 'energy' });
    setDense(embedding, EMBED_KERNEL, embedBias);
    setDense(head, HEAD_KERNEL, HEAD_BIAS);
    await writeLayersModel(model, dir);
    model.dispose();
    return join(dir, MODEL_JSON);
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'audio model '));
    modulePath = join(root, 'custom layers', 'frame-energy.js');
    await mkdir(join(root, 'custom layers'));
    await writeFile(modulePath, customLayerSource(require.resolve('@tensorflow/tfjs')));
    ({ FrameEnergy } = createRequire(__filename)(modulePath) as { FrameEnergy: LayerClass });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('layers model', () => {
    let modelPath: string;

    before(async () => {
      modelPath = await saveEnergyModel(join(root, 'energy model'));
    });

    it('should embed at the named layer: frame energies times the known weights', async () => {
      const baseline = tf.memory().numTensors;
      const extractor = await modelExtractor({
        modelPath,
        sampleRate: RATE,
        inputSeconds: SECONDS,
        output: 'embedding',
        customLayers: modulePath,
      });
      const input = segments();
      const { x, dim } = await extractor.embed(input);
      extractor.dispose();

      expect(dim).to.equal(3);
      expect(extractor.sampleRate).to.equal(RATE);
      expect(extractor.segmentSeconds).to.equal(SECONDS);
      expectClose(
        x,
        input.flatMap((s) => dense(frameEnergies(s), EMBED_KERNEL, EMBED_BIAS)),
      );
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it("should take the model's output when no output is named, in batches", async () => {
      const baseline = tf.memory().numTensors;
      const extractor = await modelExtractor({
        modelPath,
        sampleRate: RATE,
        inputSeconds: SECONDS,
        customLayers: modulePath,
        batchSize: 2,
      });
      const [constant, sine] = segments();
      const input = [constant, sine, sine.map((v) => -v / 2)];
      const { x, dim } = await extractor.embed(input);
      const empty = await extractor.embed([]);
      extractor.dispose();

      expect(dim).to.equal(2);
      expect(extractor.id).to.match(/:head:8000:0\.5$/);
      expectClose(
        x,
        input.flatMap((s) => {
          return dense(dense(frameEnergies(s), EMBED_KERNEL, EMBED_BIAS), HEAD_KERNEL, HEAD_BIAS);
        }),
      );
      expect(empty.x.length).to.equal(0);
      expect(empty.dim).to.equal(2);
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should give an id that stays with the same files and changes with weights and output', async () => {
      const same = await saveEnergyModel(join(root, 'energy model copy'));
      const other = await saveEnergyModel(join(root, 'energy model other'), [0.1, -0.2, 0.31]);
      const settings = { sampleRate: RATE, inputSeconds: SECONDS, customLayers: modulePath };
      const idOf = async (path: string, output?: string) => {
        const extractor = await modelExtractor({ ...settings, modelPath: path, output });
        extractor.dispose();
        return extractor.id;
      };

      const id = await idOf(modelPath, 'embedding');
      expect(id).to.match(/^tfjs-model:[0-9a-f]{16}:embedding:8000:0\.5$/);
      expect(await idOf(same, 'embedding')).to.equal(id);
      expect(await idOf(other, 'embedding')).to.not.equal(id);
      expect(await idOf(modelPath, 'frame_energy')).to.not.equal(id);
    });

    it('should name the file and both lengths when the input length does not match', async () => {
      const err = await refusal(
        modelExtractor({ modelPath, sampleRate: RATE, inputSeconds: 1, customLayers: modulePath }),
      );
      expect(err.message).to.contain(modelPath);
      expect(err.message).to.contain('takes 4000 samples');
      expect(err.message).to.contain('= 8000');
    });

    it('should refuse a segment of another length, naming the length the model takes', async () => {
      const extractor = await modelExtractor({
        modelPath,
        sampleRate: RATE,
        inputSeconds: SECONDS,
      });
      const err = await refusal(extractor.embed([new Float32Array(SAMPLES - 1)]));
      extractor.dispose();
      expect(err.message).to.contain('segment 0 has 3999 samples; the model takes 4000');
    });

    it('should list the layers when the output layer does not exist', async () => {
      const err = await refusal(
        modelExtractor({
          modelPath,
          sampleRate: RATE,
          inputSeconds: SECONDS,
          output: 'embeding',
          customLayers: modulePath,
        }),
      );
      expect(err.message).to.contain(modelPath);
      expect(err.message).to.contain('"embeding"');
      expect(err.message).to.contain('audio, frame_energy, embedding, head');
    });

    it('should leave no tensor behind when a setting is refused after loading', async () => {
      const baseline = tf.memory().numTensors;
      await refusal(
        modelExtractor({ modelPath, sampleRate: RATE, inputSeconds: 1, customLayers: modulePath }),
      );
      await refusal(
        modelExtractor({ modelPath, sampleRate: RATE, inputSeconds: SECONDS, output: 'nope' }),
      );
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should name the unregistered layer class and the customLayers setting', async () => {
      const dir = join(root, 'unregistered model');
      const path = await saveEnergyModel(dir);
      const json = (await readFile(path, 'utf8')).replace(
        '"class_name":"FrameEnergy"',
        '"class_name":"NotRegisteredAnywhere"',
      );
      await writeFile(path, json);

      const settings = { modelPath: path, sampleRate: RATE, inputSeconds: SECONDS };
      const without = await refusal(modelExtractor(settings));
      expect(without.message).to.contain(path);
      expect(without.message).to.contain('layer class NotRegisteredAnywhere');
      expect(without.message).to.contain('not registered');
      expect(without.message).to.contain('set customLayers to a module that registers it');

      const withModule = await refusal(modelExtractor({ ...settings, customLayers: modulePath }));
      expect(withModule.message).to.contain('layer class NotRegisteredAnywhere');
      expect(withModule.message).to.contain(`customLayers module ${modulePath}`);
    });

    it('should reshape segments for a model that takes [samples, 1]', async () => {
      const dir = join(root, 'column model');
      await mkdir(dir);
      const kernel = [1, 0, 0.5, -1, -2, 3, 0.25, 0.75];
      const model = tf.sequential({
        layers: [
          tf.layers.flatten({ inputShape: [4, 1], name: 'flat' }),
          tf.layers.dense({ units: 2, name: 'out' }),
        ],
      });
      setDense(model.getLayer('out'), kernel, [0, 1]);
      await writeLayersModel(model, dir);
      model.dispose();

      const extractor = await modelExtractor({
        modelPath: join(dir, MODEL_JSON),
        sampleRate: 8,
        inputSeconds: 0.5,
      });
      const { x, dim } = await extractor.embed([Float32Array.from([1, 2, 3, 4])]);
      extractor.dispose();
      expect(dim).to.equal(2);
      expectClose(x, dense([1, 2, 3, 4], kernel, [0, 1]));
    });
  });

  describe("as the loader's embedder", () => {
    it('should embed a training folder of recordings with the model and its custom layer', async () => {
      const modelPath = await saveEnergyModel(join(root, 'loader model'));
      const folder = join(root, 'recordings');
      // 8 kHz, as the model takes: no resampling. 2 s at a constant 0.5 (exact in 16 bits) and
      // silence; crop mode center takes the middle 0.5 s of each.
      const wav = (value: number) => {
        const file = new WaveFile();
        file.fromScratch(1, RATE, '16', new Int16Array(2 * RATE).fill(value * 32768));
        return Buffer.from(file.toBuffer());
      };
      await mkdir(join(folder, 'A'), { recursive: true });
      await mkdir(join(folder, 'Noise'), { recursive: true });
      await writeFile(join(folder, 'A', 'tone.wav'), wav(0.5));
      await writeFile(join(folder, 'Noise', 'quiet.wav'), wav(0));

      const baseline = tf.memory().numTensors;
      const data = await loadDataSet(folder, {
        embedder: modelPath,
        modelSampleRate: RATE,
        modelInputSeconds: SECONDS,
        modelOutput: 'embedding',
        customLayers: modulePath,
        cacheDir: false,
        validationSplit: 0,
      });
      expect(tf.memory().numTensors).to.equal(baseline);
      expect(data.dim).to.equal(3);
      expect(data.embedding.source).to.match(/^tfjs-model:[0-9a-f]{16}:embedding:8000:0.5$/);
      // Every frame's mean square is 0.25 for the tone (within 16-bit scaling: decoders divide
      // by 32767 or 32768) and 0 for silence.
      expectClose(
        data.x.subarray(0, 3),
        dense([0.25, 0.25, 0.25, 0.25], EMBED_KERNEL, EMBED_BIAS),
        2e-4,
      );
      expectClose(data.x.subarray(3, 6), EMBED_BIAS);
      expect(data.sources.map((s) => s?.file)).to.deep.equal(['A/tone.wav', 'Noise/quiet.wav']);
    });
  });

  describe('graph model', () => {
    const KERNEL = [1, 2, -1, 0.5, 0.25, -3, 4, 1];
    const BIAS = [0.5, -0.5];
    let modelPath: string;

    /** A Float32 shape attribute as the TensorFlow converter writes it. */
    const shapeOf = (dims: number[]) => ({ dim: dims.map((d) => ({ size: String(d) })) });
    const float = { type: 'DT_FLOAT' };

    before(async () => {
      const dir = join(root, 'graph model');
      await mkdir(dir);
      const constant = (name: string, dims: number[]) => ({
        name,
        op: 'Const',
        attr: {
          dtype: float,
          value: { tensor: { dtype: 'DT_FLOAT', tensorShape: shapeOf(dims) } },
        },
      });
      const json = {
        format: 'graph-model',
        generatedBy: '2.15.0',
        convertedBy: 'written by hand for the tests',
        modelTopology: {
          node: [
            {
              name: 'audio',
              op: 'Placeholder',
              attr: { dtype: float, shape: { shape: shapeOf([-1, 4]) } },
            },
            constant('kernel', [4, 2]),
            constant('bias', [2]),
            {
              name: 'MatMul',
              op: 'MatMul',
              input: ['audio', 'kernel'],
              attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } },
            },
            { name: 'Identity', op: 'AddV2', input: ['MatMul', 'bias'], attr: { T: float } },
          ],
          library: {},
          versions: { producer: 1 },
        },
        weightsManifest: [
          {
            paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'],
            weights: [
              { name: 'kernel', shape: [4, 2], dtype: 'float32' },
              { name: 'bias', shape: [2], dtype: 'float32' },
            ],
          },
        ],
      };
      // Split inside the kernel, as the converter splits shards by size, not by weight.
      const bytes = Buffer.from(Float32Array.from([...KERNEL, ...BIAS]).buffer);
      await writeFile(join(dir, 'group1-shard1of2.bin'), bytes.subarray(0, 24));
      await writeFile(join(dir, 'group1-shard2of2.bin'), bytes.subarray(24));
      modelPath = join(dir, MODEL_JSON);
      await writeFile(modelPath, JSON.stringify(json));
    });

    const rows = [
      [1, 2, 3, 4],
      [-0.5, 0.25, 0, 2],
    ];
    const input = () => rows.map((r) => Float32Array.from(r));

    it('should give x W + b at the default output and x W at a named node', async () => {
      const baseline = tf.memory().numTensors;
      const settings = { modelPath, sampleRate: 8, inputSeconds: 0.5 };
      const whole = await modelExtractor(settings);
      const product = await modelExtractor({ ...settings, output: 'MatMul' });
      const byDefault = await whole.embed(input());
      const atNode = await product.embed(input());
      whole.dispose();
      product.dispose();

      expect(whole.id).to.match(/^tfjs-model:[0-9a-f]{16}:Identity:8:0\.5$/);
      expect(byDefault.dim).to.equal(2);
      expectClose(
        byDefault.x,
        rows.flatMap((r) => dense(r, KERNEL, BIAS)),
      );
      expectClose(
        atNode.x,
        rows.flatMap((r) => dense(r, KERNEL, [0, 0])),
      );
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should leave the weights whole when the output named is a weight', async () => {
      const baseline = tf.memory().numTensors;
      const settings = { modelPath, sampleRate: 8, inputSeconds: 0.5, output: 'kernel' };
      const extractor = await modelExtractor(settings);
      const four = [...input(), ...input()];
      const first = await extractor.embed(four);
      const second = await extractor.embed(four);
      const err = await refusal(extractor.embed(input()));
      extractor.dispose();

      expectClose(first.x, KERNEL);
      expectClose(second.x, KERNEL);
      expect(err.message).to.contain('has shape [4, 2] for 2 segments');
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should list the outputs and nodes when the output does not exist', async () => {
      const baseline = tf.memory().numTensors;
      const err = await refusal(
        modelExtractor({ modelPath, sampleRate: 8, inputSeconds: 0.5, output: 'Identity_1' }),
      );
      expect(err.message).to.contain(modelPath);
      expect(err.message).to.contain('"Identity_1"');
      expect(err.message).to.contain('outputs are: Identity');
      expect(err.message).to.contain('audio, kernel, bias, MatMul, Identity');
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should name the file and both lengths when the input length does not match', async () => {
      const err = await refusal(modelExtractor({ modelPath, sampleRate: 8, inputSeconds: 1 }));
      expect(err.message).to.contain(modelPath);
      expect(err.message).to.contain('takes 4 samples');
      expect(err.message).to.contain('8 * 1 = 8');
    });
  });

  describe('files that are not a model', () => {
    it('should say what a model.json must hold', async () => {
      const path = join(root, 'not a model.json');
      await writeFile(path, JSON.stringify({ hello: 'world' }));
      const err = await refusal(modelExtractor({ modelPath: path }));
      expect(err.message).to.contain(path);
      expect(err.message).to.contain('expected format "layers-model" or "graph-model"');
    });

    it('should name a weight file that is missing', async () => {
      const dir = join(root, 'no weights');
      const path = await saveEnergyModel(dir);
      await rm(join(dir, 'weights.bin'));
      const err = await refusal(
        modelExtractor({ modelPath: path, sampleRate: RATE, inputSeconds: SECONDS }),
      );
      expect(err.message).to.contain(path);
      expect(err.message).to.contain('weight file weights.bin');
    });
  });
});
