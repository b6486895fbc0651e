import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { lastValueFrom, of } from 'rxjs';
import { DataSet, Part, createDataSet } from '../src/dataset/dataset';
import { loadDataSet } from '../src/dataset/load';
import { writeDemoTable } from '../src/demo';
import { EvaluatedEvent, evaluateModel } from '../src/streams/evaluate';
import { StoredEvent, saveVersion } from '../src/streams/store';
import { ModelStore } from '../src/store/model-store';
import { buildClassifier } from '../src/train/model';
import { DEFAULT_TRAIN_OPTIONS } from '../src/train/trainer';
import { refusal } from './helpers';

/**
 * Two classes, one feature each: row r holds 1 + r / 10 in its class's feature and 0 in the
 * other (no two scores of a class tie), rows 0-3 validation and 4-7 test. A single Dense layer with kernel `w * I` and no bias scores class c by
 * sigmoid(w * x_c): w > 0 ranks every positive first (AUPRC 1), w < 0 ranks them last.
 */
function oneHotData(): DataSet {
  const rows = 8;
  const x = new Float32Array(rows * 2);
  const y = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    x[r * 2 + (r % 2)] = 1 + r / 10;
    y[r * 2 + (r % 2)] = 1;
  }
  const parts = Uint8Array.from({ length: rows }, (_, r) => (r < 4 ? Part.validation : Part.test));
  return createDataSet({ x, y, dim: 2, labels: ['A', 'B'], parts });
}

function modelWith(weight: number): tf.LayersModel {
  const model = buildClassifier({ dim: 2, classes: 2, hiddenUnits: 0, dropout: 0, seed: 1 });
  tf.tidy(() => model.layers.at(-1)!.setWeights([tf.mul(tf.eye(2), weight), tf.zeros([2])]));
  return model;
}

async function resultEvent(weight: number, data = oneHotData()): Promise<EvaluatedEvent> {
  const model = modelWith(weight);
  return {
    type: 'result',
    data,
    evaluation: await evaluateModel(model, data),
    result: {
      model,
      history: [],
      epochsRun: 1,
      bestEpoch: 1,
      stoppedEarly: false,
      stopReason: 'reached the last epoch',
      options: DEFAULT_TRAIN_OPTIONS,
      seconds: 0,
    },
  };
}

async function stored(root: string, weight: number, keep = 5) {
  const event = await resultEvent(weight);
  try {
    const out = await lastValueFrom(of(event).pipe(saveVersion(root, { Seed: 1 }, { keep })));
    return out as Extract<StoredEvent, { type: 'result' }>;
  } finally {
    if (event.type === 'result') event.result.model.dispose();
  }
}

describe('model store', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'model store '));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('should promote the first version, a better one, an equal one, and keep out a worse one', async () => {
    const baseline = tf.memory().numTensors;
    const first = await stored(root, 1);
    expect(first.promotion).to.include({ version: 'v0001', promoted: true, score: 1 });
    expect(first.promotion.reason).to.match(/had no current version/);

    // w = -1 scores each class's two test positives below 0.5 and its two negatives at 0.5:
    // positives at ranks 3 and 4, precision 1/3 and 2/4, AP = (1/3 + 1/2) / 2 = 0.41667.
    const worse = await stored(root, -1);
    expect(worse.promotion.promoted).to.equal(false);
    expect(worse.promotion.score).to.be.closeTo(5 / 12, 1e-6);
    expect(worse.promotion.previous).to.deep.equal({ version: 'v0001', score: 1 });
    expect((await new ModelStore(root).current())?.version).to.equal('v0001');

    const equal = await stored(root, 2);
    expect(equal.promotion).to.include({ version: 'v0003', promoted: true });
    const current = JSON.parse(readFileSync(join(root, 'current.json'), 'utf8'));
    expect(current).to.include({ version: 'v0003', reason: 'promoted', metric: 'macro AUPRC' });
    expect(tf.memory().numTensors).to.equal(baseline);
  });

  it('should keep the newest versions and never remove the current one', async () => {
    await stored(root, 1, 2);
    await stored(root, -1, 2);
    const third = await stored(root, -2, 2);
    // v0001 is current (the others scored worse): kept although it is the oldest.
    expect(third.promotion.pruned).to.deep.equal([]);
    expect(await new ModelStore(root).versions()).to.deep.equal(['v0001', 'v0002', 'v0003']);
    await stored(root, 3, 2);
    expect(await new ModelStore(root).versions()).to.deep.equal(['v0003', 'v0004']);
    expect((await new ModelStore(root).current())?.version).to.equal('v0004');
  });

  it('should roll back to the version before the current one, or to a named one', async () => {
    await stored(root, 1);
    await stored(root, 2);
    await stored(root, 3);
    const store = new ModelStore(root);
    expect((await store.rollback()).version).to.equal('v0002');
    expect((await store.rollback()).version).to.equal('v0001');
    expect((await refusal(store.rollback())).message).to.match(/no version older than v0001/);
    expect((await store.rollback('v0003')).version).to.equal('v0003');
    expect((await refusal(store.rollback('v0009'))).message).to.match(/no such model version/);
  });

  it('should refuse a data set without test rows, naming what to do', async () => {
    const data = oneHotData();
    const noTest = createDataSet({
      ...data,
      parts: new Uint8Array(data.rows).fill(Part.validation),
    });
    const event = await resultEvent(1, noTest);
    try {
      const error = await refusal(lastValueFrom(of(event).pipe(saveVersion(root, {}))));
      expect(error.message).to.match(/compares versions on test rows.*give the loader a test set/);
      expect(existsSync(join(root, 'versions'))).to.equal(false);
    } finally {
      if (event.type === 'result') event.result.model.dispose();
    }
  });

  it('should remove what a save that died left behind, and never count it as a version', async () => {
    const leftover = join(root, 'versions', '.saving-999999-1');
    mkdirSync(leftover, { recursive: true });
    await stored(root, 1);
    expect(existsSync(leftover)).to.equal(false);
    expect(await new ModelStore(root).versions()).to.deep.equal(['v0001']);
  });
});

describe('test rows held out by path', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdout-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('should hold out the same files on every load, whatever else the table gains', async () => {
    const table = join(dir, 'table.csv');
    await writeDemoTable(table, 2);
    const options = { labelColumn: 'label', fileColumn: 'file', holdout: 0.25, seed: 1 };
    const testFiles = (data: DataSet) =>
      new Set(data.sources.filter((_, r) => data.parts[r] === Part.test).map((s) => s!.file));
    const first = testFiles(await loadDataSet(table, options));
    const reseeded = testFiles(await loadDataSet(table, { ...options, seed: 7 }));
    expect([...reseeded].sort()).to.deep.equal([...first].sort());
    // 50 recordings at a share of 0.25: about 12, and at least a few.
    expect(first.size).to.be.within(5, 22);
    const smaller = testFiles(await loadDataSet(table, { ...options, holdout: 0.1 }));
    for (const f of smaller) expect(first.has(f)).to.equal(true);
  });
});
