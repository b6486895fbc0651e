import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'fs/promises';
import { tmpdir } from 'os';
import { basename, dirname, join } from 'path';
import { lastValueFrom, of, toArray } from 'rxjs';
import { createDataSet, DataSet, Part, PartCode, summarize } from '../src/dataset/dataset';
import { Random } from '../src/random';
import {
  loadModelDirectory,
  ModelRecord,
  Provenance,
  saveModelDirectory,
} from '../src/store/model-directory';
import { evaluate } from '../src/streams/evaluate';
import { save, SavedEvent } from '../src/streams/save';
import { train } from '../src/streams/train';
import { buildClassifier } from '../src/train/model';

const DIM = 8;
const LABELS = ['wren', 'blackbird', 'robin'];

/**
 * Three classes in model order wren, blackbird, robin (deliberately not sorted), 30 rows each:
 * class c near 2c in every feature. Per class, rows 0-19 train, 20-24 validation, 25-29 test.
 */
function birds(seed = 11): DataSet {
  const random = new Random('store-test-rows');
  const x: number[] = [];
  const y: number[] = [];
  const parts: PartCode[] = [];
  LABELS.forEach((_, c) => {
    for (let i = 0; i < 30; i++) {
      for (let d = 0; d < DIM; d++) x.push(2 * c + random.uniform() - 0.5);
      y.push(...LABELS.map((__, k) => (k === c ? 1 : 0)));
      parts.push(i < 20 ? Part.train : i < 25 ? Part.validation : Part.test);
    }
  });
  return createDataSet({
    x: Float32Array.from(x),
    y: Float32Array.from(y),
    dim: DIM,
    labels: LABELS,
    parts: Uint8Array.from(parts),
    embedding: { source: 'test:birds' },
    seed,
  });
}

/** Ten rows to score: the first ten of the data set's x. */
function tenRows(data: DataSet): Float32Array {
  return data.x.slice(0, 10 * data.dim);
}

function predict(model: tf.LayersModel, x: Float32Array): number[] {
  return tf.tidy(() =>
    Array.from((model.predict(tf.tensor2d(x, [x.length / DIM, DIM])) as tf.Tensor).dataSync()),
  );
}

/** A record around an untrained head; enough for the store, which does not care how it trained. */
function recordOf(model: tf.LayersModel, labels: string[], seed = 1): ModelRecord {
  const data = createDataSet({
    x: new Float32Array(labels.length * DIM),
    y: Float32Array.from(labels.flatMap((_, r) => labels.map((__, c) => (r === c ? 1 : 0)))),
    dim: DIM,
    labels,
    seed,
  });
  const provenance: Provenance = {
    package: '@seedlab/node-red-custom-classifier',
    packageVersion: '0.0.0-test',
    backend: tf.getBackend(),
    createdAt: '2000-01-01T00:00:00.000Z',
    embedding: { source: 'test', dim: DIM },
    seed,
    labels,
    thresholds: Object.fromEntries(labels.map((l) => [l, 0.5])),
    preprocessing: 'none',
    stopReason: 'test',
    bestEpoch: 0,
  };
  return {
    model,
    labels,
    hyperparameters: { epochs: 1 },
    samples: summarize(data),
    history: [],
    evaluation: {},
    provenance,
  };
}

function head(classes: number, seed: number): tf.Sequential {
  return buildClassifier({ dim: DIM, classes, hiddenUnits: 0, dropout: 0, seed });
}

/** Every file of a directory with its content, to compare before and after. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort();
  const contents = await Promise.all(names.map((n) => readFile(join(dir, n), 'base64')));
  return Object.fromEntries(names.map((n, i) => [n, contents[i]]));
}

/** Entries beside `dir` that a save leaves behind when it fails to clean up. */
async function leftovers(dir: string): Promise<string[]> {
  const prefix = `.${basename(dir)}.saving-`;
  return (await readdir(dirname(dir))).filter((n) => n.startsWith(prefix));
}

async function rejection(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection, but the call succeeded');
}

describe('model directory', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'custom classifier store '));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('save and load (case 24)', () => {
    const files = [
      'evaluation.csv',
      'evaluation.json',
      'history.csv',
      'hyperparameters.csv',
      'labels.txt',
      'model.json',
      'provenance.json',
      'samples.csv',
      'weights.bin',
    ];
    let dir: string;
    let data: DataSet;
    let saved: Extract<SavedEvent, { type: 'result' }>;

    before(async () => {
      // Neither folder exists yet: the save makes the parent, as tfjs-node's file handler does.
      dir = join(root, 'my models', 'garden birds v1');
      data = birds();
      const events = await lastValueFrom(
        of(data).pipe(
          train({ epochs: 5, learningRate: 1e-2 }),
          evaluate(),
          save(dir, { epochs: 5, 'learning rate': 0.01, 'upsampling mode': 'repeat' }),
          toArray(),
        ),
      );
      const last = events.at(-1);
      if (last?.type !== 'result') throw new Error('the pipeline saved nothing');
      saved = last;
    });

    after(() => {
      saved?.result.model.dispose();
    });

    it('should write every file of a model directory', async () => {
      expect(saved.dir).to.equal(dir);
      expect((await readdir(dir)).sort()).to.deep.equal(files);
      expect(await leftovers(dir)).to.deep.equal([]);
    });

    it('should write the labels one per line in model order', async () => {
      expect(await readFile(join(dir, 'labels.txt'), 'utf8')).to.equal('wren\nblackbird\nrobin\n');
    });

    it('should write the tables a user reads', async () => {
      const hyper = await readFile(join(dir, 'hyperparameters.csv'), 'utf8');
      expect(hyper).to.equal(
        'Parameter,Value\nepochs,5\nlearning rate,0.01\nupsampling mode,repeat\n',
      );

      // 20 train, 5 validation, 5 test rows with a 1 per class, none upsampled.
      const samples = (await readFile(join(dir, 'samples.csv'), 'utf8')).split('\n');
      expect(samples.slice(0, 4)).to.deep.equal([
        'Label,Train,Validation,Test,Upsampled',
        'wren,20,5,5,0',
        'blackbird,20,5,5,0',
        'robin,20,5,5,0',
      ]);

      const history = (await readFile(join(dir, 'history.csv'), 'utf8')).trimEnd().split('\n');
      expect(history).to.have.length(1 + saved.result.epochsRun);
      expect(history[1].split(',')[0]).to.equal('1');

      // Header, macro row, one row per class; the test part is the one reported.
      const evaluation = (await readFile(join(dir, 'evaluation.csv'), 'utf8')).trimEnd();
      const rows = evaluation.split('\n').map((line) => line.split(',')[0]);
      expect(rows).to.deep.equal(['Class', 'macro', ...LABELS]);
      const json = JSON.parse(await readFile(join(dir, 'evaluation.json'), 'utf8')) as Record<
        string,
        { rows: number }
      >;
      expect(json.validation.rows).to.equal(15);
      expect(json.test.rows).to.equal(15);
    });

    it('should record where the model came from', async () => {
      const pkg = JSON.parse(await readFile(join(__dirname, '..', 'package.json'), 'utf8')) as {
        version: string;
      };
      const provenance = JSON.parse(
        await readFile(join(dir, 'provenance.json'), 'utf8'),
      ) as Provenance;
      expect(provenance.embedding.dim).to.equal(DIM);
      expect(provenance.embedding.source).to.equal('test:birds');
      expect(provenance.seed).to.equal(11);
      expect(provenance.labels).to.deep.equal(LABELS);
      expect(provenance.backend).to.equal(tf.getBackend());
      expect(provenance.packageVersion).to.equal(pkg.version);
      expect(Object.keys(provenance.thresholds)).to.deep.equal(LABELS);
      for (const t of Object.values(provenance.thresholds)) {
        expect(t).to.be.within(0.1, 0.85);
      }
    });

    it('should load back and predict exactly as the trained model', async () => {
      const rows = tenRows(data);
      const loaded = await loadModelDirectory(dir);
      try {
        expect(loaded.labels).to.deep.equal(LABELS);
        expect(loaded.dim).to.equal(DIM);
        const expected = predict(saved.result.model, rows);
        expect(expected).to.have.length(30);
        expect(predict(loaded.model, rows)).to.deep.equal(expected);
      } finally {
        loaded.model.dispose();
      }
    });

    it('should load with plain TF.js, without this package', async () => {
      const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as {
        modelTopology: object;
        weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
      };
      expect(json.weightsManifest.map((g) => g.paths)).to.deep.equal([['weights.bin']]);
      const bin = await readFile(join(dir, 'weights.bin'));
      const model = await tf.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: json.modelTopology,
          weightSpecs: json.weightsManifest[0].weights,
          weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
        }),
      );
      try {
        const rows = tenRows(data);
        expect(predict(model, rows)).to.deep.equal(predict(saved.result.model, rows));
      } finally {
        model.dispose();
      }
    });
  });

  describe('atomic save', () => {
    let dir: string;
    let good: Record<string, string>;

    before(async () => {
      dir = join(root, 'atomic model');
      const model = head(3, 1);
      try {
        await saveModelDirectory(dir, recordOf(model, LABELS));
      } finally {
        model.dispose();
      }
      good = await snapshot(dir);
    });

    it('should leave the old directory alone when the model cannot be written', async () => {
      const gone = head(3, 2);
      gone.dispose();
      const err = await rejection(() => saveModelDirectory(dir, recordOf(gone, LABELS)));
      expect(err.message).to.match(/dispose/i);
      expect(await snapshot(dir)).to.deep.equal(good);
      expect(await leftovers(dir)).to.deep.equal([]);
    });

    it('should leave the old directory alone when a late file fails', async () => {
      const model = head(3, 3);
      try {
        const record = recordOf(model, LABELS);
        const broken = {
          ...record.provenance,
          toJSON: () => {
            throw new Error('provenance cannot be written');
          },
        };
        const err = await rejection(() =>
          saveModelDirectory(dir, { ...record, provenance: broken }),
        );
        expect(err.message).to.equal('provenance cannot be written');
      } finally {
        model.dispose();
      }
      expect(await snapshot(dir)).to.deep.equal(good);
      expect(await leftovers(dir)).to.deep.equal([]);
    });

    it('should replace the whole directory on a successful save', async () => {
      const model = head(2, 4);
      try {
        await saveModelDirectory(dir, recordOf(model, ['frog', 'toad']));
        // No evaluation in the new record: the old evaluation files must be gone, not kept.
        expect((await readdir(dir)).sort()).to.deep.equal([
          'evaluation.json',
          'history.csv',
          'hyperparameters.csv',
          'labels.txt',
          'model.json',
          'provenance.json',
          'samples.csv',
          'weights.bin',
        ]);
        expect(await readFile(join(dir, 'labels.txt'), 'utf8')).to.equal('frog\ntoad\n');
        expect(await leftovers(dir)).to.deep.equal([]);

        const loaded = await loadModelDirectory(dir);
        try {
          const rows = tenRows(birds());
          expect(predict(loaded.model, rows)).to.deep.equal(predict(model, rows));
        } finally {
          loaded.model.dispose();
        }
      } finally {
        model.dispose();
      }
    });
  });

  describe('load checks', () => {
    it('should refuse a labels file that disagrees with the model, naming the file', async () => {
      const dir = join(root, 'mismatch');
      const model = head(3, 5);
      try {
        await saveModelDirectory(dir, recordOf(model, LABELS));
      } finally {
        model.dispose();
      }
      await writeFile(join(dir, 'labels.txt'), 'wren\nrobin\n');

      const baseline = tf.memory().numTensors;
      const err = await rejection(() => loadModelDirectory(dir));
      expect(err.message).to.contain(join(dir, 'labels.txt'));
      expect(err.message).to.contain('2 labels');
      expect(err.message).to.contain('3 outputs');
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should return to the tensor baseline after save, load and dispose', async () => {
      const baseline = tf.memory().numTensors;
      const dir = join(root, 'hygiene');
      const model = head(3, 6);
      await saveModelDirectory(dir, recordOf(model, LABELS));
      const loaded = await loadModelDirectory(dir);
      predict(loaded.model, tenRows(birds()));
      expect(tf.memory().numTensors).to.be.above(baseline);
      loaded.model.dispose();
      model.dispose();
      expect(tf.memory().numTensors).to.equal(baseline);
    });
  });
});
