import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { mkdtemp, rm } from 'fs/promises';
import type { Node, NodeMessage } from 'node-red';
import { tmpdir } from 'os';
import { join } from 'path';
import { Subject, lastValueFrom, of, toArray } from 'rxjs';
import predictNode from '../../nodes/predict/predict';
import {
  DataSet,
  Part,
  PartCode,
  createDataSet,
  rowsOf,
  selectRows,
} from '../../src/dataset/dataset';
import { reportToJson } from '../../src/evaluate/report';
import { Random } from '../../src/random';
import { Provenance, saveModelDirectory } from '../../src/store/model-directory';
import { evaluate } from '../../src/streams/evaluate';
import { PredictReply, PredictRequest, Predictor, predict } from '../../src/streams/predict';
import { SavedEvent, save } from '../../src/streams/save';
import { train } from '../../src/streams/train';
import { buildClassifier, predictScores } from '../../src/train/model';
import type { TestFlows } from 'node-red-node-test-helper';
import { helper, useNodeRed } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const statusNode = require('@node-red/nodes/core/common/25-status.js');

const NODES = [predictNode, catchNode, statusNode];

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * Saves a one-layer model with kernel `sign` x identity and zero bias, so its scores are
 * sigmoid(sign * x) per class, and the given per-class thresholds as its provenance.
 */
async function linearModelDir(
  dir: string,
  labels: string[],
  sign: number,
  thresholds: Record<string, number>,
): Promise<void> {
  const dim = labels.length;
  const model = buildClassifier({ dim, classes: dim, hiddenUnits: 0, dropout: 0, seed: 1 });
  const weights = tf.tidy(() => [tf.eye(dim).mul(sign), tf.zeros([dim])]);
  model.getLayer('output').setWeights(weights);
  tf.dispose(weights);
  const provenance: Provenance = {
    package: 'test',
    packageVersion: '0.0.0',
    backend: tf.getBackend(),
    createdAt: '2000-01-01T00:00:00.000Z',
    embedding: { source: 'test', dim },
    seed: 1,
    labels,
    thresholds,
    preprocessing: 'none',
    stopReason: 'test',
    bestEpoch: 1,
  };
  const perClass = Object.fromEntries(
    labels.map((l) => [l, { train: 0, validation: 0, test: 0, synthetic: 0 }]),
  );
  await saveModelDirectory(dir, {
    model,
    labels,
    hyperparameters: {},
    samples: { rows: 0, dim, classes: dim, parts: { train: 0, validation: 0, test: 0 }, perClass },
    history: [],
    evaluation: {},
    provenance,
  });
  model.dispose();
}

/** Messages that reach a helper node, in arrival order. */
function collect(id: string): NodeMessage[] {
  const received: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => received.push(msg));
  return received;
}

async function until(check: () => boolean, what: string, ms = 20000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface StatusMessage extends NodeMessage {
  status: { text?: string; fill?: string; source: { id: string } };
}

type FlowNode = { id: string; type: string; [setting: string]: unknown };

/** A tab with the nodes, a Catch and a Status node (both for the whole tab) and their helpers. */
function flowWith(...nodes: FlowNode[]): TestFlows {
  return [
    { id: 'tab', type: 'tab' },
    ...[
      ...nodes,
      { id: 'catch', type: 'catch', scope: null, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
      { id: 'status', type: 'status', scope: null, wires: [['statuses']] },
      { id: 'statuses', type: 'helper' },
    ].map((n) => ({ z: 'tab', x: 100, y: 100, ...n })),
  ];
}

function predictConfig(id: string, settings: object, out = `${id}-out`): FlowNode {
  return {
    id,
    type: 'classifier-predict',
    modelDirType: 'str',
    thresholdMode: 'f1',
    threshold: 0.5,
    maxLabels: 0,
    ...settings,
    wires: [[out]],
  };
}

const ABC = ['A', 'B', 'C'];
const XYZ = ['X', 'Y', 'Z'];

describe('classifier-predict node', function () {
  useNodeRed();
  let dir: string;
  let abc: string;
  let xyz: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'predict node '));
    abc = join(dir, 'model abc');
    xyz = join(dir, 'model xyz');
    await linearModelDir(abc, ABC, 1, { A: 0.9, B: 0.6, C: 0.25 });
    await linearModelDir(xyz, XYZ, -1, { X: 0.5, Y: 0.5, Z: 0.5 });
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('should load the model at deploy and say how many labels it has', async () => {
    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: abc }), { id: 'p-out', type: 'helper' }),
    );
    const statuses = collect('statuses') as StatusMessage[];
    await until(() => statuses.some((m) => m.status.text === '3 labels'), '"3 labels"');
    expect(statuses.map((m) => m.status.text)).to.not.include('failed');
  });

  it('should apply F1-best thresholds, a fixed threshold and a label limit', async () => {
    await helper.load(
      NODES,
      flowWith(
        predictConfig('f1', { modelDir: abc }),
        predictConfig('fixed', { modelDir: abc, thresholdMode: 'fixed', threshold: 0.5 }),
        predictConfig('high', { modelDir: abc, thresholdMode: 'fixed', threshold: '0.7' }),
        predictConfig('one', { modelDir: abc, maxLabels: 1 }),
        ...['f1', 'fixed', 'high', 'one'].map((id) => ({ id: `${id}-out`, type: 'helper' })),
      ),
    );
    const outputs = Object.fromEntries(
      ['f1', 'fixed', 'high', 'one'].map((id) => [id, collect(`${id}-out`)]),
    );
    const source = { file: 'rec.wav', start: 3, end: 6 };
    for (const id of Object.keys(outputs)) {
      helper.getNode(id).receive({ payload: [2, 0.5, -1], source, topic: 't' } as NodeMessage);
    }
    await until(() => Object.values(outputs).every((o) => o.length === 1), 'four outputs');

    // Scores are sigmoid(x): A 0.8808, B 0.6225, C 0.2689.
    const [a, b, c] = [sigmoid(2), sigmoid(0.5), sigmoid(-1)];
    const labelsOf = (id: string) =>
      (outputs[id][0].payload as { label: string }[]).map((p) => p.label);
    // F1 thresholds A 0.9, B 0.6, C 0.25: A misses its threshold; B before C (higher score).
    expect(labelsOf('f1')).to.deep.equal(['B', 'C']);
    expect(labelsOf('fixed')).to.deep.equal(['A', 'B']);
    expect(labelsOf('high')).to.deep.equal(['A']);
    expect(labelsOf('one')).to.deep.equal(['B']);

    const msg = outputs.fixed[0];
    const payload = msg.payload as { label: string; score: number }[];
    expect(payload[0].score).to.be.closeTo(a, 1e-6);
    expect(payload[1].score).to.be.closeTo(b, 1e-6);
    const scores = msg.scores as Record<string, number>;
    expect(Object.keys(scores)).to.deep.equal(ABC);
    expect(scores.A).to.be.closeTo(a, 1e-6);
    expect(scores.B).to.be.closeTo(b, 1e-6);
    expect(scores.C).to.be.closeTo(c, 1e-6);
    expect(msg.source).to.deep.equal(source);
    expect(msg.topic).to.equal('t');
    expect(msg.model).to.deep.equal({ dir: abc, labels: ABC });
  });

  it('should score several embeddings and every row of a data set, one message each', async () => {
    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: abc }), { id: 'p-out', type: 'helper' }),
    );
    const out = collect('p-out');
    const p = helper.getNode('p');
    p.receive({
      payload: [Float32Array.from([0, 0, 0]), [3, 0, 0]],
      source: [{ file: 'a.wav' }, { file: 'b.wav' }],
    } as NodeMessage);
    const data = createDataSet({
      x: Float32Array.from([0, 3, 0, 0, 0, 3]),
      y: new Float32Array(2),
      dim: 3,
      labels: ['A'],
      sources: [{ file: 'c.wav', start: 0, end: 3 }, undefined],
    });
    p.receive({ payload: data } as NodeMessage);
    await until(() => out.length === 4, 'four outputs');

    expect(out.map((m) => m.row)).to.deep.equal([0, 1, 0, 1]);
    expect(out.map((m) => m.source)).to.deep.equal([
      { file: 'a.wav' },
      { file: 'b.wav' },
      { file: 'c.wav', start: 0, end: 3 },
      undefined,
    ]);
    // sigmoid(0) = 0.5 is below every F1 threshold but C's (0.25); sigmoid(3) = 0.95 passes all.
    const labels = out.map((m) => (m.payload as { label: string }[]).map((l) => l.label));
    expect(labels).to.deep.equal([['C'], ['A', 'C'], ['B', 'C'], ['C']]);
    expect(out.every((m) => !(m.payload instanceof tf.Tensor))).to.equal(true);
  });

  it('should send embeddings of another dimension to a Catch node, naming both', async () => {
    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: abc }), { id: 'p-out', type: 'helper' }),
    );
    const out = collect('p-out');
    const caught = collect('caught');
    helper.getNode('p').receive({ payload: [1, 2, 3, 4] } as NodeMessage);
    helper.getNode('p').receive({ payload: 'not numbers' } as NodeMessage);
    helper.getNode('p').receive({ payload: [[1, 2, 3], [1]] } as NodeMessage);
    // Three bytes, as an MQTT message delivers them: not an embedding of three values.
    helper.getNode('p').receive({ payload: Buffer.from([1, 2, 3]) } as NodeMessage);
    await until(() => caught.length === 4, 'four errors');

    // The malformed payloads fail at once; the dimension error once the model has loaded.
    const messages = caught.map((m) => (m.error as { message: string }).message);
    const dimension = messages.find((m) => /embeddings of 4 values/.test(m));
    expect(dimension).to.match(
      /msg\.payload: embeddings of 4 values, but the model at .* expects 3/,
    );
    expect(messages.some((m) => /msg\.payload: expected an embedding/.test(m))).to.equal(true);
    expect(messages).to.satisfy((all: string[]) =>
      all.some((m) => /msg\.payload\[1\]: 1 values, but msg\.payload\[0\] has 3/.test(m)),
    );
    expect(messages.some((m) => /got bytes \(a Buffer\)/.test(m))).to.equal(true);
    expect(out).to.have.length(0);
  });

  it('should take the model directory from a message property', async () => {
    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: 'model', modelDirType: 'msg' }), {
        id: 'p-out',
        type: 'helper',
      }),
    );
    const out = collect('p-out');
    const caught = collect('caught');
    const p = helper.getNode('p');
    p.receive({ payload: [1, 1, 1], model: abc } as NodeMessage);
    p.receive({ payload: [1, 1, 1], model: xyz } as NodeMessage);
    p.receive({ payload: [1, 1, 1], model: join(dir, 'missing') } as NodeMessage);
    p.receive({ payload: [1, 1, 1], model: abc } as NodeMessage);
    await until(() => out.length + caught.length === 4, 'four answers');

    expect(out.map((m) => (m.model as { dir: string }).dir)).to.deep.equal([abc, xyz, abc]);
    expect((caught[0].error as { message: string }).message).to.match(/missing/);
  });

  it('should switch models on a trainer result, answering every message exactly once', async () => {
    const baseline = tf.memory().numTensors;
    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: abc }), { id: 'p-out', type: 'helper' }),
    );
    const out = collect('p-out');
    const p = helper.getNode('p');
    p.receive({ payload: [0, 0, 0], n: -1 } as NodeMessage);
    await until(() => out.length === 1, 'the first model');
    // One Dense layer: its kernel and its bias.
    expect(tf.memory().numTensors).to.equal(baseline + 2);

    // Six embeddings around the switch, all sent before the new model can have loaded.
    const n = 6;
    for (let i = 0; i < n; i++) {
      if (i === 3) p.receive({ payload: { modelDir: xyz, labels: XYZ } } as NodeMessage);
      p.receive({ payload: [2, 0, 0], n: i } as NodeMessage);
    }
    await until(() => out.length === n + 1, `${n} more outputs`);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const answered = out.slice(1);
    expect(answered.map((m) => m.n)).to.deep.equal([0, 1, 2, 3, 4, 5]);
    const dirs = answered.map((m) => (m.model as { dir: string }).dir);
    expect(dirs).to.deep.equal([abc, abc, abc, xyz, xyz, xyz]);
    // Model XYZ scores sigmoid(-x): X = sigmoid(-2).
    expect((answered[3].scores as Record<string, number>).X).to.be.closeTo(sigmoid(-2), 1e-6);
    expect(out).to.have.length(n + 1);
    // The old model is gone once the new one is in use.
    expect(tf.memory().numTensors).to.equal(baseline + 2);

    await helper.unload();
    expect(tf.memory().numTensors).to.equal(baseline);
  });

  it('should release the model when closed, also while it is still loading', async () => {
    const baseline = tf.memory().numTensors;
    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: abc }), { id: 'p-out', type: 'helper' }),
    );
    await helper.unload();
    expect(tf.memory().numTensors).to.equal(baseline);

    await helper.load(
      NODES,
      flowWith(predictConfig('p', { modelDir: abc }), { id: 'p-out', type: 'helper' }),
    );
    const out = collect('p-out');
    helper.getNode('p').receive({ payload: [1, 1, 1] } as NodeMessage);
    await until(() => out.length === 1, 'an output');
    await helper.unload();
    expect(tf.memory().numTensors).to.equal(baseline);
  });

  it('should say why it has no model and refuse bad settings', async () => {
    await helper.load(
      NODES,
      flowWith(
        predictConfig('none', { modelDir: '' }),
        predictConfig('gone', { modelDir: join(dir, 'nowhere') }),
        predictConfig('bad', { modelDir: abc, thresholdMode: 'fixed', threshold: 1.5 }),
        ...['none', 'gone', 'bad'].map((id) => ({ id: `${id}-out`, type: 'helper' })),
      ),
    );
    const caught = collect('caught');
    const statuses = collect('statuses') as StatusMessage[];
    await until(
      () =>
        statuses.some(
          (m) => m.status.source.id === 'gone' && /no model yet/.test(m.status.text ?? ''),
        ),
      'the wait for a model',
    );
    for (const id of ['none', 'gone', 'bad']) {
      helper.getNode(id).receive({ payload: [1, 1, 1] } as NodeMessage);
    }
    await until(() => caught.length === 3, 'three errors');

    const bySource = Object.fromEntries(
      caught.map((m) => [
        (m.error as { source: { id: string } }).source.id,
        (m.error as { message: string }).message,
      ]),
    );
    expect(bySource.none).to.match(/no model is loaded/);
    // A folder without a model may become a model store: it is followed until a version is current.
    expect(bySource.gone).to.match(/nowhere: no model yet: neither a model directory/);
    expect(bySource.bad).to.match(/threshold: expected a number from 0 to 1, got "1.5"/);
  });

  describe('case 7: inference sees what training saw', () => {
    /** Two classes of raw embeddings far from zero, 8 values each; rows 0-7 train, 8-9 validation. */
    function raw(): DataSet {
      const random = new Random('predict-case-7');
      const x: number[] = [];
      const y: number[] = [];
      const parts: PartCode[] = [];
      for (let c = 0; c < 2; c++) {
        for (let i = 0; i < 10; i++) {
          for (let d = 0; d < 8; d++) x.push(50 + 40 * c + 10 * random.uniform());
          y.push(c === 0 ? 1 : 0, c === 1 ? 1 : 0);
          parts.push(i < 8 ? Part.train : Part.validation);
        }
      }
      return createDataSet({
        x: Float32Array.from(x),
        y: Float32Array.from(y),
        dim: 8,
        labels: ['low', 'high'],
        parts: Uint8Array.from(parts),
        seed: 7,
      });
    }

    it('should give the same finite scores in memory and from the saved model', async () => {
      const data = raw();
      const modelDir = join(dir, 'case 7');
      const events = await lastValueFrom(
        of(data).pipe(
          train({ epochs: 5, batchSize: 8, learningRate: 0.01 }),
          evaluate(),
          save(modelDir, { Epochs: 5 }),
          toArray(),
        ),
      );
      const saved = events.find((e) => e.type === 'result') as Extract<
        SavedEvent,
        { type: 'result' }
      >;
      const zero = new Float32Array(8);
      const scaled = data.x.slice(0, 8).map((v) => v * 100);
      const model = saved.result.model;
      const inMemory = [predictScores(model, zero, 8), predictScores(model, scaled, 8)];
      const validation = selectRows(data, rowsOf(data, Part.validation));
      const result = {
        modelDir,
        labels: [...data.labels],
        dim: 8,
        history: saved.result.history,
        evaluation: { validation: reportToJson(saved.evaluation.reports.validation!) },
        thresholds: saved.evaluation.thresholds,
        predictions: {
          validation: {
            y: validation.y,
            scores: predictScores(model, validation.x, 8),
            rows: validation.rows,
          },
        },
      };
      model.dispose();

      await helper.load(
        NODES,
        flowWith(predictConfig('p', { modelDir: '' }), { id: 'p-out', type: 'helper' }),
      );
      const out = collect('p-out');
      const p = helper.getNode('p') as Node;
      p.receive({ payload: result } as NodeMessage);
      p.receive({ payload: zero } as NodeMessage);
      p.receive({ payload: Array.from(scaled) } as NodeMessage);
      await until(() => out.length === 2, 'two outputs');

      out.forEach((msg, i) => {
        const scores = msg.scores as Record<string, number>;
        for (const [c, label] of data.labels.entries()) {
          expect(Number.isFinite(scores[label])).to.equal(true);
          expect(scores[label]).to.equal(inMemory[i][c]);
        }
      });
    });
  });
});

describe('predict operator', () => {
  /** A predictor around an unsaved model whose scores are sigmoid(sign * x). */
  function linear(dir: string, sign: number): Predictor {
    const model = buildClassifier({ dim: 2, classes: 2, hiddenUnits: 0, dropout: 0, seed: 1 });
    const weights = tf.tidy(() => [tf.eye(2).mul(sign), tf.zeros([2])]);
    model.getLayer('output').setWeights(weights);
    tf.dispose(weights);
    const provenance = { thresholds: {} } as Provenance;
    return { model, labels: ['a', 'b'], dim: 2, provenance, dir };
  }

  /** Loads that finish only when the test says so. */
  function controlledLoads() {
    const pending = new Map<string, (p: Predictor) => void>();
    const load = (dir: string) => new Promise<Predictor>((resolve) => pending.set(dir, resolve));
    const finish = (dir: string, predictor: Predictor) => pending.get(dir)!(predictor);
    return { load, finish };
  }

  const score = (context: string): PredictRequest<string> => ({
    type: 'score',
    embeddings: { x: Float32Array.from([1, 0]), rows: 1, dim: 2 },
    context,
  });

  it('should keep scores waiting while a model loads, then answer each once, in order', async () => {
    const baseline = tf.memory().numTensors;
    const { load, finish } = controlledLoads();
    const requests = new Subject<PredictRequest<string>>();
    const replies: PredictReply<string>[] = [];
    let released = false;
    const subscription = requests
      .pipe(predict<string>({ load, onReleased: () => (released = true) }))
      .subscribe((r) => replies.push(r));

    requests.next({ type: 'load', dir: 'one', context: 'load one' });
    requests.next(score('s1'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(replies).to.have.length(0);
    const one = linear('one', 1);
    finish('one', one);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(replies.map((r) => r.context)).to.deep.equal(['load one', 's1']);

    requests.next({ type: 'load', dir: 'two', context: 'load two' });
    requests.next(score('s2'));
    requests.next(score('s3'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(replies).to.have.length(2);
    finish('two', linear('two', -1));
    await new Promise((resolve) => setTimeout(resolve, 0));

    expect(replies.map((r) => r.context)).to.deep.equal(['load one', 's1', 'load two', 's2', 's3']);
    const scored = replies.filter((r) => r.type === 'scored');
    expect(scored.map((r) => r.predictor.dir)).to.deep.equal(['one', 'two', 'two']);
    // sigmoid(1) from model one, sigmoid(-1) from model two.
    expect(scored[0].scores[0]).to.be.closeTo(sigmoid(1), 1e-6);
    expect(scored[1].scores[0]).to.be.closeTo(sigmoid(-1), 1e-6);
    expect(tf.memory().numTensors).to.equal(baseline + 2);

    // Closed while a third model loads: it is disposed when it arrives, then released fires.
    requests.next({ type: 'load', dir: 'three', context: 'load three' });
    subscription.unsubscribe();
    expect(released).to.equal(false);
    finish('three', linear('three', 1));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(released).to.equal(true);
    expect(tf.memory().numTensors).to.equal(baseline);
  });

  it('should keep the previous model when a new one fails to load', async () => {
    const baseline = tf.memory().numTensors;
    const requests = new Subject<PredictRequest<string>>();
    const replies: PredictReply<string>[] = [];
    const load = async (dir: string) => {
      if (dir === 'broken') throw new Error('broken: no model.json');
      return linear(dir, 1);
    };
    const subscription = requests.pipe(predict<string>({ load })).subscribe((r) => replies.push(r));
    requests.next({ type: 'load', dir: 'good', context: 'l1' });
    requests.next({ type: 'load', dir: 'broken', context: 'l2' });
    requests.next(score('s'));
    requests.next({ ...score('only broken'), dir: 'broken' } as PredictRequest<string>);
    await new Promise((resolve) => setTimeout(resolve, 10));

    expect(replies.map((r) => r.type)).to.deep.equal(['loaded', 'failed', 'scored', 'failed']);
    expect((replies[2] as { predictor: Predictor }).predictor.dir).to.equal('good');
    expect((replies[3] as { error: Error }).error.message).to.match(
      /the model at broken is not loaded: loading broken failed: broken: no model.json/,
    );
    subscription.unsubscribe();
    expect(tf.memory().numTensors).to.equal(baseline);
  });
});
