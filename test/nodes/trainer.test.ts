import { expect } from 'chai';
import { EventEmitter } from 'events';
import * as tf from '@tensorflow/tfjs';
import {
  PathLike,
  StatOptions,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { Node, NodeMessage, NodeStatus } from 'node-red';
import { lastValueFrom, of, toArray } from 'rxjs';
import trainerNode from '../../nodes/trainer/trainer';
import { DataSet, Part, createDataSet } from '../../src/dataset/dataset';
import { loadDataSet } from '../../src/dataset/load';
import { Random } from '../../src/random';
import { train } from '../../src/streams/train';
import { EpochStats } from '../../src/train/trainer';
import { helper, useNodeRed } from './harness';

// The module object itself, so that a stub reaches the code that imported from it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fsPromises: typeof import('fs/promises') = require('fs/promises');

// The test helper loads the core Catch and Complete nodes of a flow by itself.
const NODES = trainerNode;
const LABELS = ['A', 'B', 'C'];

interface Spec {
  rows?: number;
  seed?: number;
  /** Every fifth row is validation unless false. */
  validation?: boolean;
}

/**
 * `rows` x 8 embeddings of 3 classes, row r of class r % 3: feature d is near 1 when d % 3 is the
 * class, near 0 otherwise, plus uniform noise. Every fifth row (r = 0, 5, 10, ...) is validation.
 */
function dataSet(spec: Spec = {}): DataSet {
  const { rows = 300, seed = 1, validation = true } = spec;
  const dim = 8;
  const noise = new Random('trainer-node-rows');
  const x = new Float32Array(rows * dim);
  const y = new Float32Array(rows * LABELS.length);
  for (let r = 0; r < rows; r++) {
    const c = r % 3;
    y[r * 3 + c] = 1;
    for (let d = 0; d < dim; d++) x[r * dim + d] = (d % 3 === c ? 1 : 0) + noise.uniform() - 0.5;
  }
  const parts = Uint8Array.from({ length: rows }, (_, r) =>
    validation && r % 5 === 0 ? Part.validation : Part.train,
  );
  return createDataSet({ x, y, dim, labels: LABELS, parts, seed });
}

/** Trainer `t1` (outputs to helpers `result` and `progress`), a Catch and a Complete node. */
function flow(trainer: Record<string, unknown>) {
  return [
    {
      id: 't1',
      type: 'classifier-trainer',
      name: 'trainer',
      wires: [['result'], ['progress']],
      ...trainer,
    },
    { id: 'result', type: 'helper' },
    { id: 'progress', type: 'helper' },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper' },
    { id: 'completer', type: 'complete', scope: ['t1'], uncaught: false, wires: [['completed']] },
    { id: 'completed', type: 'helper' },
  ];
}

/** Messages a helper node receives from now on. */
function inputs(id: string): NodeMessage[] {
  const received: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => received.push(msg));
  return received;
}

/** Status calls of a node from now on (the test helper reports each call). */
function statuses(id: string): NodeStatus[] {
  const calls: NodeStatus[] = [];
  reports(id).on('call:status', (call: { args: [NodeStatus] }) => calls.push(call.args[0]));
  return calls;
}

/** Warnings a node logs from now on. */
function warnings(id: string): string[] {
  const texts: string[] = [];
  reports(id).on('call:warn', (call: { args: [unknown] }) => texts.push(String(call.args[0])));
  return texts;
}

/** A node as the emitter of the test helper's `call:<method>` events, which its typings omit. */
function reports(id: string): EventEmitter {
  return helper.getNode(id) as unknown as EventEmitter;
}

/** Waits until `check` holds, polling; fails after `ms` with `what`. */
async function until(check: () => boolean, what: string, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The text of the error a Catch node received, without the `Error: ` Node-RED puts first. */
function caughtText(msg: NodeMessage): string {
  return (msg.error as { message: string }).message.replace(/^Error: /, '');
}

interface ResultPayload {
  modelDir: string;
  labels: string[];
  dim: number;
  history: EpochStats[];
  hyperparameters: Record<string, string | number | boolean>;
  stopReason: string;
  stoppedEarly: boolean;
  bestEpoch: number;
  epochsRun: number;
  seconds: number;
  backend: string;
  evaluation: { validation?: { rows: number; classes: unknown[] }; test?: unknown };
  thresholds: Record<string, number>;
  predictions: {
    validation?: { y: Float32Array; scores: Float32Array; rows: number };
    test?: unknown;
  };
}

const payloadOf = (msg: NodeMessage) => msg.payload as ResultPayload;

/** Every file of a folder (one level) and its bytes. */
function filesOf(dir: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
}

describe('classifier-trainer node', function () {
  useNodeRed();
  let temp: string;
  beforeEach(() => {
    temp = mkdtempSync(join(tmpdir(), 'trainer-node-'));
  });
  afterEach(() => {
    rmSync(temp, { recursive: true, force: true });
  });

  it('should train, save and send one result and a progress array per epoch', async () => {
    const modelDir = join(temp, 'model');
    await helper.load(NODES, flow({ epochs: 3, modelDir }));
    const results = inputs('result');
    const progress = inputs('progress');
    const status = statuses('t1');
    const data = dataSet({ seed: 7 });

    helper.getNode('t1').receive({ payload: data, topic: 'run' } as NodeMessage);
    await until(() => results.length === 1, 'the result');
    await sleep(50);

    expect(results).to.have.length(1);
    expect(results[0].topic).to.equal('run');
    const p = payloadOf(results[0]);
    expect(p.modelDir).to.equal(modelDir);
    for (const file of ['model.json', 'weights.bin', 'labels.txt', 'hyperparameters.csv']) {
      expect(existsSync(join(modelDir, file)), file).to.equal(true);
    }
    expect(readFileSync(join(modelDir, 'labels.txt'), 'utf8')).to.equal('A\nB\nC\n');
    expect(p.labels).to.deep.equal(LABELS);
    expect(p.dim).to.equal(8);
    // 3 epochs cannot trigger early stopping (patience 5).
    expect(p.epochsRun).to.equal(3);
    expect(p.history).to.have.length(3);
    expect(p.stoppedEarly).to.equal(false);
    expect(p.stopReason).to.equal('completed all 3 epochs');
    expect(p.bestEpoch).to.be.within(1, 3);
    expect(p.backend).to.equal(tf.getBackend());
    expect(p.seconds).to.be.above(0);
    expect(p.hyperparameters).to.include({
      Epochs: 3,
      'Batch size': 32,
      'Learning rate': 0.0001,
      'Hidden units': 0,
      Dropout: 0,
      'Use focal loss': false,
      'L2 factor': 0.00001,
      'Weight decay': 0.004,
      Seed: 7,
    });
    expect(p.hyperparameters).to.not.have.property('Validation split');
    // No stage before the trainer: none of them is recorded as on.
    expect(p.hyperparameters).to.include({ 'Upsampling ratio': 0, 'Use mixup': false });

    // Validation rows are r = 0, 5, ..., 295: 60 rows, of class r % 3.
    const validation = Array.from({ length: 60 }, (_, i) => 5 * i);
    expect(p.evaluation.validation?.rows).to.equal(60);
    expect(p.evaluation).to.not.have.property('test');
    const predicted = p.predictions.validation!;
    expect(predicted.rows).to.equal(60);
    const y = new Float32Array(180);
    validation.forEach((r, i) => (y[i * 3 + (r % 3)] = 1));
    expect(Array.from(predicted.y)).to.deep.equal(Array.from(y));
    expect(predicted.scores).to.have.length(180);
    for (const s of predicted.scores) expect(s).to.be.within(0, 1);
    expect(Object.keys(p.thresholds)).to.deep.equal(LABELS);

    expect(progress).to.have.length(3 * 3);
    p.history.forEach((h, e) => {
      const epoch = progress.slice(3 * e, 3 * e + 3);
      expect(epoch.map((m) => m.topic)).to.deep.equal(['loss', 'val_loss', 'val_AUPRC']);
      expect(epoch.map((m) => m.payload)).to.deep.equal([h.loss, h.valLoss, h.valAuprc]);
      for (const m of epoch) expect(m).to.include({ epoch: e + 1, epochs: 3 });
    });

    expect(status.map((s) => s.text)).to.include('epoch 1/3 loss ' + brief(p.history[0].loss));
    expect(status.at(-1)).to.deep.include({ fill: 'green', text: 'saved' });
  });

  it('should take the model directory from the message or the environment when told', async () => {
    const fromMsg = join(temp, 'from-msg');
    const fromEnv = join(temp, 'from-env');
    process.env.TRAINER_TEST_MODEL_DIR = fromEnv;
    const fromEnvTrainer = {
      id: 't2',
      type: 'classifier-trainer',
      epochs: 1,
      modelDir: 'TRAINER_TEST_MODEL_DIR',
      modelDirType: 'env',
      wires: [['result'], []],
    };
    await helper.load(NODES, [
      ...flow({ epochs: 1, modelDir: 'target', modelDirType: 'msg' }),
      fromEnvTrainer,
    ]);
    const results = inputs('result');
    helper.getNode('t1').receive({ payload: dataSet(), target: fromMsg } as NodeMessage);
    helper.getNode('t2').receive({ payload: dataSet() } as NodeMessage);
    await until(() => results.length === 2, 'two results');
    delete process.env.TRAINER_TEST_MODEL_DIR;

    expect(results.map((m) => payloadOf(m).modelDir).sort()).to.deep.equal([fromEnv, fromMsg]);
    expect(existsSync(join(fromMsg, 'model.json'))).to.equal(true);
    expect(existsSync(join(fromEnv, 'model.json'))).to.equal(true);
  });

  describe('three data sets during one run (case 20)', () => {
    /**
     * Sends data set a, and b and c (seeds 2 and 3) as soon as a's first epoch is reported; waits
     * until all three input messages are complete.
     */
    async function triggers(busy: string, queueLength = 1) {
      await helper.load(
        NODES,
        flow({ epochs: 10, batchSize: 8, modelDir: join(temp, busy), busy, queueLength }),
      );
      const results = inputs('result');
      const progress = inputs('progress');
      const completed = inputs('completed');
      const caught = inputs('caught');
      const warned = warnings('t1');
      const status = statuses('t1');
      const trainer = helper.getNode('t1');
      const send = (tag: string, seed: number) =>
        trainer.receive({ _msgid: `msg-${tag}`, topic: tag, payload: dataSet({ seed }) });

      send('a', 1);
      await until(() => progress.length > 0, "a's first epoch");
      send('b', 2);
      send('c', 3);
      await until(() => completed.length === 3, 'three complete messages');
      await sleep(200);

      expect(caught).to.have.length(0);
      const done = completed.map((m) => m.topic).sort();
      expect(done, 'every input completed once').to.deep.equal(['a', 'b', 'c']);
      for (const m of results) {
        expect(m._msgid).to.equal(`msg-${m.topic}`);
        expect(payloadOf(m).hyperparameters.Seed).to.equal({ a: 1, b: 2, c: 3 }[m.topic!]);
      }
      return { results: results.map((m) => m.topic), warned, status: status.map((s) => s.text) };
    }

    it('should run the first and the last with queue length 1 (the second is replaced)', async () => {
      const { results, warned, status } = await triggers('queue');
      expect(results).to.deep.equal(['a', 'c']);
      expect(warned).to.have.length(1);
      expect(warned[0]).to.match(/msg-b: not trained: a newer data set replaced it/);
      expect(status).to.include('queued 1');
    });

    it('should run all three in order with queue length 2', async () => {
      const { results, warned, status } = await triggers('queue', 2);
      expect(results).to.deep.equal(['a', 'b', 'c']);
      expect(warned).to.deep.equal([]);
      expect(status).to.include.members(['queued 1', 'queued 2']);
    });

    it('should queue data sets in the order they arrived when checking one folder takes longer', async () => {
      // b's look at the model folder is held back 300 ms; c's is not, and must still wait.
      const modelDir = join(temp, 'in order');
      await helper.load(NODES, flow({ epochs: 10, batchSize: 8, modelDir, queueLength: 2 }));
      const results = inputs('result');
      const progress = inputs('progress');
      const completed = inputs('completed');
      const trainer = helper.getNode('t1');
      const send = (tag: string, seed: number) =>
        trainer.receive({ topic: tag, payload: dataSet({ seed }) } as NodeMessage);
      let holdNext = false;
      const realStat = fsPromises.stat;
      const stat = async (path: PathLike, options?: StatOptions) => {
        if (path === modelDir && holdNext) {
          holdNext = false;
          await sleep(300);
        }
        return realStat(path, options);
      };
      fsPromises.stat = stat as typeof fsPromises.stat;
      try {
        send('a', 1);
        await until(() => progress.length > 0, "a's first epoch");
        holdNext = true;
        send('b', 2);
        send('c', 3);
        await until(() => completed.length === 3, 'three complete messages');
      } finally {
        fsPromises.stat = realStat;
      }
      expect(results.map((m) => m.topic)).to.deep.equal(['a', 'b', 'c']);
    });

    it('should cancel the first and the second with restart', async () => {
      const { results, warned } = await triggers('restart');
      expect(results).to.deep.equal(['c']);
      expect(warned).to.have.length(2);
      expect(warned[0]).to.match(/msg-a: training cancelled: restarted/);
      expect(warned[1]).to.match(/msg-b: training cancelled: restarted/);
    });

    it('should run only the first with ignore', async () => {
      const { results, warned } = await triggers('ignore');
      expect(results).to.deep.equal(['a']);
      expect(warned).to.have.length(2);
      expect(warned[0]).to.match(/msg-b: not trained: busy/);
      expect(warned[1]).to.match(/msg-c: not trained: busy/);
    });
  });

  it('should end a run on msg.stop and save the best model so far', async () => {
    const modelDir = join(temp, 'stopped');
    await helper.load(NODES, flow({ epochs: 500, batchSize: 8, modelDir }));
    const results = inputs('result');
    const progress = inputs('progress');
    const completed = inputs('completed');
    const status = statuses('t1');
    const trainer = helper.getNode('t1');

    trainer.receive({ topic: 'long', payload: dataSet() } as NodeMessage);
    await until(() => progress.length > 0, 'the first epoch');
    trainer.receive({ stop: true } as NodeMessage);
    await until(() => results.length === 1, 'the result');
    await until(() => completed.length === 2, 'both messages complete');

    const p = payloadOf(results[0]);
    expect(results[0].topic).to.equal('long');
    expect(p.stopReason).to.match(/^stopped on request during epoch \d+$/);
    expect(p.stoppedEarly).to.equal(true);
    expect(p.epochsRun).to.be.below(500);
    expect(p.history).to.have.length(p.epochsRun);
    expect(existsSync(join(modelDir, 'model.json'))).to.equal(true);
    const texts = status.map((s) => s.text);
    expect(texts).to.include('stopping');
    expect(status.at(-1)).to.deep.include({ fill: 'green', text: 'stopped' });
  });

  it('should discard a run on msg.cancel: no result, no model directory', async () => {
    const modelDir = join(temp, 'cancelled');
    await helper.load(NODES, flow({ epochs: 500, batchSize: 8, modelDir }));
    const baseline = tf.memory().numTensors;
    const results = inputs('result');
    const progress = inputs('progress');
    const completed = inputs('completed');
    const caught = inputs('caught');
    const warned = warnings('t1');
    const status = statuses('t1');
    const trainer = helper.getNode('t1');

    trainer.receive({ _msgid: 'msg-long', topic: 'long', payload: dataSet() });
    await until(() => progress.length > 0, 'the first epoch');
    trainer.receive({ cancel: true } as NodeMessage);
    await until(() => completed.length === 2, 'both messages complete');
    await until(() => tf.memory().numTensors === baseline, 'the tensors freed', 5000);
    const progressAfterCancel = progress.length;
    await sleep(200);

    expect(results).to.have.length(0);
    expect(caught).to.have.length(0);
    expect(progress).to.have.length(progressAfterCancel);
    expect(existsSync(modelDir)).to.equal(false);
    expect(readdirSync(temp)).to.deep.equal([]);
    expect(warned).to.deep.equal([
      'data set of message msg-long: training cancelled on request (msg.cancel); nothing saved',
    ]);
    expect(status.at(-1)).to.deep.include({ text: 'cancelled' });
  });

  it('should stop at once on redeploy and leave the saved model untouched (case 19)', async () => {
    const modelDir = join(temp, 'model');
    await helper.load(NODES, flow({ epochs: 2, modelDir }));
    const first = inputs('result');
    helper.getNode('t1').receive({ payload: dataSet() } as NodeMessage);
    await until(() => first.length === 1, 'the first model');
    const saved = filesOf(modelDir);
    await helper.unload();
    const baseline = tf.memory().numTensors;

    await helper.load(NODES, flow({ epochs: 100000, batchSize: 8, modelDir }));
    const trainer = helper.getNode('t1') as Node & { send: (msg: unknown) => void };
    const sent: number[] = [];
    const send = trainer.send;
    trainer.send = function (this: Node, msg: unknown) {
      sent.push(Date.now());
      return send.call(this, msg);
    };
    const progress = inputs('progress');
    trainer.receive({ payload: dataSet({ rows: 3000 }) } as NodeMessage);
    await until(() => progress.length >= 6, 'two epochs');
    expect(tf.memory().numTensors).to.be.above(baseline);

    const closing = Date.now();
    await helper.unload();
    const closed = Date.now();
    // Freed by the time close has finished, not some time later.
    const tensorsWhenClosed = tf.memory().numTensors;
    await sleep(500);

    expect(closed - closing).to.be.below(5000);
    expect(tensorsWhenClosed).to.equal(baseline);
    expect(tf.memory().numTensors).to.equal(baseline);
    expect(sent.filter((t) => t >= closing)).to.deep.equal([]);
    expect(readdirSync(temp)).to.deep.equal(['model']);
    expect(filesOf(modelDir)).to.deep.equal(saved);
  });

  it('should not replace the saved model when closed while saving', async () => {
    const modelDir = join(temp, 'model');
    await helper.load(NODES, flow({ epochs: 1, modelDir }));
    const first = inputs('result');
    helper.getNode('t1').receive({ payload: dataSet() } as NodeMessage);
    await until(() => first.length === 1, 'the first model');
    const saved = filesOf(modelDir);
    await helper.unload();

    // The save looks at the model directory just before it renames the new files into place:
    // the flow is stopped right then.
    let closed: Promise<void> | undefined;
    const realStat = fsPromises.stat;
    const stat = async (path: PathLike, options?: StatOptions) => {
      if (path === modelDir && closed === undefined) {
        closed = helper.unload();
        await sleep(100);
      }
      return realStat(path, options);
    };
    fsPromises.stat = stat as typeof fsPromises.stat;
    try {
      await helper.load(NODES, flow({ epochs: 1, modelDir }));
      const results = inputs('result');
      helper.getNode('t1').receive({ payload: dataSet() } as NodeMessage);
      await until(() => closed !== undefined, 'the save');
      await closed;
      await sleep(200);
      expect(results).to.have.length(0);
    } finally {
      fsPromises.stat = realStat;
    }
    expect(readdirSync(temp)).to.deep.equal(['model']);
    expect(filesOf(modelDir)).to.deep.equal(saved);
  });

  describe('errors reach a Catch node', () => {
    it('should refuse a payload that is not a data set', async () => {
      await helper.load(NODES, flow({ modelDir: join(temp, 'm') }));
      const caught = inputs('caught');
      helper.getNode('t1').receive({ payload: 'hello' } as NodeMessage);
      await until(() => caught.length === 1, 'the error');
      expect(caughtText(caught[0])).to.match(/^msg\.payload: expected a data set/);
    });

    it('should refuse a data set without validation rows', async () => {
      await helper.load(NODES, flow({ modelDir: join(temp, 'm') }));
      const caught = inputs('caught');
      const status = statuses('t1');
      helper.getNode('t1').receive({ payload: dataSet({ validation: false }) } as NodeMessage);
      await until(() => caught.length === 1, 'the error');
      expect(caughtText(caught[0])).to.match(/no validation rows/);
      await sleep(20);
      expect(status.at(-1)).to.deep.include({ fill: 'red' });
      expect(existsSync(join(temp, 'm'))).to.equal(false);
    });

    it('should name an invalid setting', async () => {
      await helper.load(NODES, flow({ epochs: 'abc', modelDir: join(temp, 'm') }));
      const caught = inputs('caught');
      helper.getNode('t1').receive({ payload: dataSet() } as NodeMessage);
      await until(() => caught.length === 1, 'the error');
      expect(caughtText(caught[0])).to.equal('epochs: expected an integer >= 1, got "abc"');
    });
  });

  it('should give exactly the figures of the library train operator', async () => {
    const csv = join(temp, 'rows.csv');
    const noise = new Random('trainer-node-csv');
    const lines = ['f1,f2,f3,f4,label'];
    for (let r = 0; r < 150; r++) {
      const c = r % 3;
      const f = [0, 1, 2, 3].map((d) => ((d === c ? 1 : 0) + noise.uniform()).toFixed(4));
      lines.push(`${f.join(',')},${LABELS[c]}`);
    }
    writeFileSync(csv, lines.join('\n') + '\n');
    const data = await loadDataSet(csv, { labelColumn: 'label', seed: 5 });

    const events = await lastValueFrom(
      of(data).pipe(train({ epochs: 6, batchSize: 16 }), toArray()),
    );
    const last = events.at(-1)!;
    if (last.type === 'result') last.result.model.dispose();
    const expected = events.filter((e) => e.type === 'epoch');

    await helper.load(NODES, flow({ epochs: 6, batchSize: 16, modelDir: join(temp, 'm') }));
    const results = inputs('result');
    helper.getNode('t1').receive({ payload: data } as NodeMessage);
    await until(() => results.length === 1, 'the result');

    const history = payloadOf(results[0]).history;
    const figures = (e: EpochStats) => [e.loss, e.valLoss, e.valAuprc, e.valAuroc, e.learningRate];
    expect(history).to.have.length(expected.length);
    expect(history.map(figures)).to.deep.equal(expected.map(figures));
  });
});

/** A loss as the status shows it: three decimals, no leading zero. */
function brief(value: number): string {
  return value.toFixed(3).replace(/^0\./, '.');
}
