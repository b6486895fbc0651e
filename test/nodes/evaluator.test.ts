import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm } from 'fs/promises';
import type { NodeMessage } from 'node-red';
import { tmpdir } from 'os';
import { join } from 'path';
import { lastValueFrom, of, toArray } from 'rxjs';
import evaluatorNode from '../../nodes/evaluator/evaluator';
import {
  DataSet,
  Part,
  PartCode,
  createDataSet,
  rowsOf,
  selectRows,
} from '../../src/dataset/dataset';
import { evaluate as evaluateScores } from '../../src/evaluate/metrics';
import { Random } from '../../src/random';
import { loadModelDirectory } from '../../src/store/model-directory';
import { evaluate } from '../../src/streams/evaluate';
import { save } from '../../src/streams/save';
import { train } from '../../src/streams/train';
import { EpochStats } from '../../src/train/trainer';
import { predictScores } from '../../src/train/model';
import type { TestFlows } from 'node-red-node-test-helper';
import { helper, useNodeRed } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const statusNode = require('@node-red/nodes/core/common/25-status.js');

const NODES = [evaluatorNode, catchNode, statusNode];

/**
 * Eight test rows of two classes. Class A is case 17 (labels 1,0,1,1,0,0,1,0, scores 0.9 ... 0.2):
 * AP 0.74702, ROC AUC 0.6875, at 0.5 precision 0.6, recall 0.75, F1 0.66667. Class B holds the
 * other rows and scores all four positives (0.6-0.9) above its negatives (0.1-0.4): AP 1, AUC 1,
 * at 0.5 precision 1, recall 1, F1 1. Top-1: row 6 (A, 0.3 < 0.4) is the only miss: 7/8.
 */
const A_LABELS = [1, 0, 1, 1, 0, 0, 1, 0];
const A_SCORES = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2];
const B_SCORES = [0.1, 0.9, 0.2, 0.3, 0.8, 0.7, 0.4, 0.6];
const TEST_Y = Float32Array.from(A_LABELS.flatMap((a) => [a, 1 - a]));
const TEST_SCORES = Float32Array.from(A_SCORES.flatMap((a, r) => [a, B_SCORES[r]]));

function history(): EpochStats[] {
  return [1, 2].map((epoch) => ({
    epoch,
    epochs: 2,
    loss: 0.7 / epoch,
    valLoss: 0.8 / epoch,
    valAuprc: 0.6 + epoch / 10,
    learningRate: 1e-4,
    seconds: 0.1,
    best: true,
  }));
}

/** A trainer result as the trainer's first output sends it, around the hand-made scores. */
function trainerResult(): Record<string, unknown> {
  return {
    modelDir: '/nowhere/model',
    labels: ['A', 'B'],
    dim: 4,
    history: history(),
    hyperparameters: { Epochs: 2 },
    stopReason: 'completed all 2 epochs',
    stoppedEarly: false,
    bestEpoch: 2,
    epochsRun: 2,
    seconds: 1,
    backend: 'wasm',
    evaluation: {},
    thresholds: { A: 0.5, B: 0.5 },
    predictions: {
      // Validation: 2 rows, A scored right with certainty, B backwards.
      validation: {
        y: Float32Array.from([1, 0, 0, 1]),
        scores: Float32Array.from([0.9, 0.8, 0.1, 0.2]),
        rows: 2,
      },
      test: { y: TEST_Y, scores: TEST_SCORES, rows: 8 },
    },
  };
}

function collect(id: string): NodeMessage[] {
  const received: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => received.push(msg));
  return received;
}

async function until(check: () => boolean, what: string, ms = 30000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function flowWith(settings: object): TestFlows {
  return [
    { id: 'tab', type: 'tab' },
    ...[
      {
        id: 'e',
        type: 'classifier-evaluator',
        part: 'auto',
        modelDir: '',
        modelDirType: 'str',
        csvFile: '',
        plotFolder: '',
        charts: true,
        ...settings,
        wires: [['out']],
      },
      { id: 'out', type: 'helper' },
      { id: 'catch', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
      { id: 'status', type: 'status', scope: null, wires: [['statuses']] },
      { id: 'statuses', type: 'helper' },
    ].map((n) => ({ z: 'tab', x: 100, y: 100, ...n })),
  ];
}

interface Report {
  part: string;
  rows: number;
  top1: number | null;
  warnings: string[];
  macro: Record<string, number | null>;
  classes: Record<string, number | string | null>[];
}

/**
 * Three classes, dim 6: class c near 3 in values 2c and 2c + 1 and near 0 elsewhere, with noise
 * of +-1 that makes some rows hard; per class 12 train, 4 validation, 4 test rows.
 */
function birds(): DataSet {
  const random = new Random('evaluator-test-rows');
  const labels = ['wren', 'robin', 'jay'];
  const x: number[] = [];
  const y: number[] = [];
  const parts: PartCode[] = [];
  labels.forEach((_, c) => {
    for (let i = 0; i < 20; i++) {
      for (let d = 0; d < 6; d++) x.push((d >> 1 === c ? 3 : 0) + 2 * random.uniform() - 1);
      y.push(...labels.map((__, k) => (k === c ? 1 : 0)));
      parts.push(i < 12 ? Part.train : i < 16 ? Part.validation : Part.test);
    }
  });
  return createDataSet({
    x: Float32Array.from(x),
    y: Float32Array.from(y),
    dim: 6,
    labels,
    parts: Uint8Array.from(parts),
    seed: 3,
  });
}

/** The same rows with the label columns in another order: jay, wren, robin. */
function reordered(data: DataSet): DataSet {
  const order = [2, 0, 1];
  const y = new Float32Array(data.y.length);
  for (let r = 0; r < data.rows; r++) {
    order.forEach((from, to) => (y[r * 3 + to] = data.y[r * 3 + from]));
  }
  return createDataSet({ ...data, y, labels: order.map((c) => data.labels[c]) });
}

describe('classifier-evaluator node', function () {
  useNodeRed();
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'evaluator node '));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('with a trainer result', () => {
    it('should report the test part with hand-checked metrics, a CSV file and charts', async () => {
      const csvFile = join(dir, 'reports', 'test.csv');
      const plotFolder = join(dir, 'charts');
      await helper.load(NODES, flowWith({ csvFile, plotFolder }));
      const out = collect('out');
      const statuses = collect('statuses');
      helper.getNode('e').receive({ payload: trainerResult(), topic: 'run 1' } as NodeMessage);
      await until(() => out.length === 1, 'the report');

      const msg = out[0];
      const report = msg.payload as Report;
      expect(report.part).to.equal('test');
      expect(report.rows).to.equal(8);
      expect(msg.topic).to.equal('run 1');

      const [a, b] = report.classes;
      expect(a.label).to.equal('A');
      expect(a.averagePrecision).to.be.closeTo(0.74702, 1e-5);
      expect(a.rocAuc).to.be.closeTo(0.6875, 1e-9);
      expect(a.precision).to.be.closeTo(0.6, 1e-9);
      expect(a.recall).to.be.closeTo(0.75, 1e-9);
      expect(a.f1).to.be.closeTo(2 / 3, 1e-9);
      expect(b.averagePrecision).to.equal(1);
      expect(b.rocAuc).to.equal(1);
      expect(b.f1).to.equal(1);
      // Macro: means over the two classes; samples and counts are sums.
      expect(report.macro.averagePrecision).to.be.closeTo((0.74702 + 1) / 2, 1e-5);
      expect(report.macro.rocAuc).to.be.closeTo((0.6875 + 1) / 2, 1e-9);
      expect(report.macro.f1).to.be.closeTo((2 / 3 + 1) / 2, 1e-9);
      expect(report.macro.samples).to.equal(8);
      expect(report.top1).to.equal(7 / 8);
      expect(report.warnings).to.deep.equal([]);

      const csv = await readFile(csvFile, 'utf8');
      const lines = csv.trimEnd().split('\n');
      expect(lines[0]).to.equal(
        'Class,Samples,Precision,Recall,F1,Threshold,Precision@T,Recall@T,F1@T,AP,AUROC,TP,FP,TN,FN',
      );
      expect(lines[1]).to.match(/^macro,8,/);
      // A at 0.5: TP 3 (0.9, 0.7, 0.6), FP 2 (0.8, 0.55), TN 2, FN 1 (0.3).
      expect(lines[2]).to.match(/^A,4,0\.60000,0\.75000,0\.66667,.*,0\.74702,0\.68750,3,2,2,1$/);
      expect(lines).to.have.length(4);

      const svg = msg.svg as Record<string, string>;
      for (const key of ['curves', 'precisionRecall', 'confusion']) {
        expect(svg[key].startsWith('<svg'), key).to.equal(true);
      }
      expect(svg.precisionRecall).to.include('A (AP 0.747)').and.include('B (AP 1.000)');
      expect(svg.confusion).to.include('>A<').and.include('>B<');
      expect(svg.curves).to.include('epoch').and.include('val_loss');
      expect((await readdir(plotFolder)).sort()).to.deep.equal([
        'confusion.svg',
        'curves.svg',
        'precision-recall.svg',
      ]);
      expect(await readFile(join(plotFolder, 'confusion.svg'), 'utf8')).to.equal(svg.confusion);

      const texts = statuses.map((m) => (m.status as { text: string }).text);
      expect(texts[texts.length - 1]).to.equal('macro AP 0.874');
    });

    it('should report the validation part when told to, without charts', async () => {
      await helper.load(NODES, flowWith({ part: 'validation', charts: false }));
      const out = collect('out');
      helper.getNode('e').receive({ payload: trainerResult() } as NodeMessage);
      await until(() => out.length === 1, 'the report');

      const report = out[0].payload as Report;
      expect(report.part).to.equal('validation');
      expect(report.rows).to.equal(2);
      // A: positive row 0 scores 0.9 over 0.1: AP 1. B: positive row 1 scores 0.2 under 0.8: AP 1/2.
      expect(report.classes[0].averagePrecision).to.equal(1);
      expect(report.classes[1].averagePrecision).to.be.closeTo(0.5, 1e-9);
      expect(out[0].svg).to.equal(undefined);
    });

    it('should send a missing part and malformed predictions to a Catch node', async () => {
      await helper.load(NODES, flowWith({ part: 'test' }));
      const caught = collect('caught');
      const noTest = trainerResult();
      noTest.predictions = {
        validation: (trainerResult().predictions as { validation: object }).validation,
      };
      const short = trainerResult();
      short.predictions = { test: { y: TEST_Y, scores: TEST_SCORES.subarray(2), rows: 8 } };
      helper.getNode('e').receive({ payload: noTest } as NodeMessage);
      helper.getNode('e').receive({ payload: short } as NodeMessage);
      helper.getNode('e').receive({ payload: 'a report please' } as NodeMessage);
      await until(() => caught.length === 3, 'three errors');

      const messages = caught.map((m) => (m.error as { message: string }).message).join('\n');
      expect(messages).to.match(
        /msg\.payload\.predictions: no test scores .*\(it has validation\)/,
      );
      expect(messages).to.match(
        /predictions\.test\.scores: expected 8 rows x 2 classes = 16 values, got 14/,
      );
      expect(messages).to.match(/msg\.payload: expected a data set/);
    });
  });

  describe('with a data set and a model directory', () => {
    let data: DataSet;
    let modelDir: string;

    before(async function () {
      data = birds();
      modelDir = join(dir, 'birds model');
      const events = await lastValueFrom(
        of(data).pipe(
          train({ epochs: 8, batchSize: 8, learningRate: 0.02 }),
          evaluate(),
          save(modelDir, { Epochs: 8 }),
          toArray(),
        ),
      );
      for (const e of events) if (e.type === 'result') e.result.model.dispose();
    });

    it('should score the test part, matching labels to the model by name', async () => {
      // Independently: the saved model's scores on the test rows, evaluated in model label order.
      const loaded = await loadModelDirectory(modelDir);
      const test = selectRows(data, rowsOf(data, Part.test));
      const expected = evaluateScores(
        test.y,
        predictScores(loaded.model, test.x, data.dim),
        test.rows,
        data.labels,
      );
      // A partly trained model (macro AP about 0.73), so the numbers below can tell classes apart:
      // the reordered labels read without matching them by name give far lower numbers.
      const unmatched = evaluateScores(
        reordered(test).y,
        predictScores(loaded.model, test.x, data.dim),
        test.rows,
        data.labels,
      );
      expect(unmatched.macro.averagePrecision).to.be.below(expected.macro.averagePrecision! - 0.2);
      loaded.model.dispose();
      const baseline = tf.memory().numTensors;

      await helper.load(NODES, flowWith({ modelDir, charts: true }));
      const out = collect('out');
      helper.getNode('e').receive({ payload: reordered(data) } as NodeMessage);
      await until(() => out.length === 1, 'the report');

      const report = out[0].payload as Report;
      expect(report.part).to.equal('test');
      expect(report.rows).to.equal(12);
      expect(report.classes.map((c) => c.label)).to.deep.equal(['wren', 'robin', 'jay']);
      expect(report.macro.averagePrecision).to.equal(expected.macro.averagePrecision);
      report.classes.forEach((c, i) => {
        expect(c.averagePrecision).to.equal(expected.classes[i].averagePrecision);
        expect(c.samples).to.equal(4);
      });
      expect(report.top1).to.equal(expected.top1);
      const svg = out[0].svg as Record<string, string | undefined>;
      expect(svg.curves).to.equal(undefined);
      expect(svg.confusion).to.include('wren').and.include('robin').and.include('jay');
      // The model was released after the evaluation.
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should take the model directory from a message property and fall back to all rows', async () => {
      await helper.load(NODES, flowWith({ modelDir: 'model', modelDirType: 'msg', charts: false }));
      const out = collect('out');
      const trainOnly = createDataSet({ ...data, parts: new Uint8Array(data.rows) });
      helper.getNode('e').receive({ payload: trainOnly, model: modelDir } as NodeMessage);
      await until(() => out.length === 1, 'the report');
      expect((out[0].payload as Report).part).to.equal('all');
      expect((out[0].payload as Report).rows).to.equal(60);
    });

    it('should send another dimension, unknown classes and no model to a Catch node', async () => {
      await helper.load(NODES, flowWith({ modelDir }));
      const caught = collect('caught');
      const narrow = createDataSet({
        x: new Float32Array(2 * 4),
        y: Float32Array.from([1, 0, 0, 0, 1, 0]),
        dim: 4,
        labels: ['wren', 'robin', 'jay'],
        parts: Uint8Array.from([2, 2]),
      });
      const strange = createDataSet({
        x: new Float32Array(6),
        y: Float32Array.from([1, 0]),
        dim: 6,
        labels: ['wren', 'owl'],
        parts: Uint8Array.from([2]),
      });
      helper.getNode('e').receive({ payload: narrow } as NodeMessage);
      helper.getNode('e').receive({ payload: strange } as NodeMessage);
      await until(() => caught.length === 2, 'two errors');

      const messages = caught.map((m) => (m.error as { message: string }).message).join('\n');
      expect(messages).to.match(
        /msg\.payload: embeddings of 4 values, but the model at .* expects 6/,
      );
      expect(messages).to.match(/does not know: owl \(the model knows wren, robin, jay\)/);
    });

    it("should refuse recordings cut otherwise than the model's, naming the setting", async () => {
      const audio = { 'Crop mode': 'segments', Overlap: 1, Fmin: 0, Fmax: 15000, 'Audio speed': 1 };
      const embedding = { source: 'spectrogram-stats/1', audio };
      const audioModel = join(dir, 'audio model');
      const events = await lastValueFrom(
        of(createDataSet({ ...data, embedding })).pipe(
          train({ epochs: 2, batchSize: 8 }),
          evaluate(),
          save(audioModel, { Epochs: 2 }),
          toArray(),
        ),
      );
      for (const e of events) if (e.type === 'result') e.result.model.dispose();

      await helper.load(NODES, flowWith({ modelDir: audioModel, charts: false }));
      const [caught, out] = [collect('caught'), collect('out')];
      const center = { ...embedding, audio: { ...audio, 'Crop mode': 'center' } };
      helper.getNode('e').receive({ payload: createDataSet({ ...data, embedding: center }) });
      await until(() => caught.length === 1, 'an error');
      expect((caught[0].error as { message: string }).message).to.include(
        'msg.payload: the recordings were embedded otherwise than the model',
      );
      expect((caught[0].error as { message: string }).message).to.include(
        'Crop mode center (model: segments)',
      );

      helper.getNode('e').receive({ payload: createDataSet({ ...data, embedding }) });
      await until(() => out.length === 1, 'the report of recordings cut alike');
      expect(caught).to.have.length(1);
    });

    it('should say which setting is missing when no model directory is given', async () => {
      await helper.load(NODES, flowWith({ modelDir: '' }));
      const caught = collect('caught');
      helper.getNode('e').receive({ payload: data } as NodeMessage);
      await until(() => caught.length === 1, 'an error');
      expect((caught[0].error as { message: string }).message).to.match(
        /the model directory setting: expected the path of a model directory/,
      );
    });
  });
});
