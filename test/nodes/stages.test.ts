import { expect } from 'chai';
import type { EventEmitter } from 'node:events';
import type { NodeMessage, NodeStatus } from 'node-red';
import type { TestFlows } from 'node-red-node-test-helper';
import { lastValueFrom, of } from 'rxjs';
import labelSmoothingNode from '../../nodes/label-smoothing/label-smoothing';
import loaderNode from '../../nodes/loader/loader';
import mixupNode from '../../nodes/mixup/mixup';
import upsamplerNode from '../../nodes/upsampler/upsampler';
import { DataSet, DataSetSummary, Part, PartCode, createDataSet } from '../../src/dataset/dataset';
import { mixup, smooth, upsample } from '../../src/streams/augment';
import { sharedData } from '../helpers';
import { helper, useNodeRed } from './harness';

const STAGES = [upsamplerNode, mixupNode, labelSmoothingNode];

/**
 * Train rows per class as `train`, plus 2 validation rows per class and one test row of the first
 * class. Class c's rows sit near c * 10 in both features; row r's second feature adds r / 100.
 */
function dataSet(train: Record<string, number>, seed = 7): DataSet {
  const labels = Object.keys(train);
  const rows: { c: number; part: PartCode }[] = [];
  labels.forEach((label, c) => {
    for (let i = 0; i < train[label]; i++) rows.push({ c, part: Part.train });
    rows.push({ c, part: Part.validation }, { c, part: Part.validation });
  });
  rows.push({ c: 0, part: Part.test });
  return createDataSet({
    x: Float32Array.from(rows.flatMap((row, r) => [row.c * 10, row.c * 10 + r / 100])),
    y: Float32Array.from(rows.flatMap((row) => labels.map((_, c) => (c === row.c ? 1 : 0)))),
    dim: 2,
    labels,
    parts: Uint8Array.from(rows, (row) => row.part),
    sources: rows.map((_, r) => ({ file: `rec${r}.wav` })),
    seed,
  });
}

/** Case 1: A 100, B 10, C 10 training rows (127 rows with 6 validation and 1 test). */
const case1 = () => dataSet({ A: 100, B: 10, C: 10 });

/** A node of a test flow: its settings are whatever its editor stores. */
type FlowNode = { id: string; type: string; wires?: string[][]; [setting: string]: unknown };

/** A test flow, typed as the test helper takes it. */
const asFlow = (nodes: FlowNode[]) => nodes as unknown as TestFlows;

/** The next message a helper node receives. */
function nextInput(id: string): Promise<NodeMessage> {
  return new Promise((resolve) => helper.getNode(id).once('input', resolve));
}

/** Status texts a node shows from now on (the test helper reports each status call). */
function statusTexts(id: string): string[] {
  const texts: string[] = [];
  // The helper reports each status call as an event the Node typings do not list.
  const node = helper.getNode(id) as unknown as EventEmitter;
  node.on('call:status', (call: { args: [NodeStatus] }) => texts.push(String(call.args[0].text)));
  return texts;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/** The text of the error a Catch node received, without the `Error: ` Node-RED puts first. */
function caughtText(msg: NodeMessage): string {
  return (msg.error as { message: string }).message.replace(/^Error: /, '');
}

/** One stage node `s1` wired to helper `out`, a Catch node wired to helper `caught`, and `extra`. */
function flow(stage: { type: string; [setting: string]: unknown }, ...extra: FlowNode[]) {
  return asFlow([
    { id: 's1', wires: [['out']], ...stage },
    { id: 'out', type: 'helper' },
    { id: 'c1', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper' },
    ...extra,
  ]);
}

/** Sends `payload` into `s1` and resolves with what reaches `out`, and the statuses shown. */
async function run(stage: { type: string; [setting: string]: unknown }, msg: NodeMessage) {
  await helper.load(STAGES, flow(stage));
  const texts = statusTexts('s1');
  const output = nextInput('out');
  helper.getNode('s1').receive(msg);
  const out = await output;
  await settle();
  return { out, data: out.payload as DataSet, summary: out.summary as DataSetSummary, texts };
}

/** Rows of each class in the training part: loaded plus upsampled. */
function trainClassCounts(summary: DataSetSummary): number[] {
  return Object.values(summary.perClass).map((c) => c.train + c.synthetic);
}

/** The rows of one part, as lists of x and y values. */
function partRows(data: DataSet, part: PartCode) {
  const k = data.labels.length;
  const out: number[][] = [];
  for (let r = 0; r < data.rows; r++) {
    if (data.parts[r] !== part) continue;
    out.push([
      ...data.x.subarray(r * data.dim, (r + 1) * data.dim),
      ...data.y.subarray(r * k, (r + 1) * k),
    ]);
  }
  return out;
}

describe('classifier stage nodes', function () {
  useNodeRed();

  describe('classifier-upsampler', function () {
    it('should raise every class to ratio x the largest (case 1)', async function () {
      // target = trunc(100 * 0.5) = 50: B and C get 40 rows each; 127 + 80 = 207 rows.
      const input = case1();
      const { data, summary, out, texts } = await run(
        { type: 'classifier-upsampler', ratio: 0.5, mode: 'smote' },
        { payload: input, topic: 'keep me' },
      );

      expect(trainClassCounts(summary)).to.deep.equal([100, 50, 50]);
      expect(summary.parts).to.deep.equal({ train: 200, validation: 6, test: 1 });
      expect(data.rows).to.equal(207);
      expect(out.topic).to.equal('keep me');
      expect(texts).to.deep.equal(['207 rows (+80)']);

      const direct = await lastValueFrom(of(input).pipe(upsample({ ratio: 0.5, mode: 'smote' })));
      expect(Array.from(data.x)).to.deep.equal(Array.from(direct.x));
      expect(Array.from(data.y)).to.deep.equal(Array.from(direct.y));
    });

    it('should take ratio and mode from msg.upsampling', async function () {
      // target = trunc(100 * 0.2) = 20: B and C get 10 rows each.
      const input = case1();
      const { data, summary, texts } = await run(
        { type: 'classifier-upsampler', ratio: 0.5, mode: 'repeat' },
        { payload: input, upsampling: { ratio: 0.2, mode: 'mean' } },
      );

      expect(trainClassCounts(summary)).to.deep.equal([100, 20, 20]);
      expect(texts).to.deep.equal(['147 rows (+20)']);
      const direct = await lastValueFrom(of(input).pipe(upsample({ ratio: 0.2, mode: 'mean' })));
      expect(Array.from(data.x)).to.deep.equal(Array.from(direct.x));
    });

    it('should pass a data set through with the default ratio 0', async function () {
      const input = case1();
      const { data, texts } = await run({ type: 'classifier-upsampler' }, { payload: input });
      expect(data.rows).to.equal(127);
      expect(Array.from(data.x)).to.deep.equal(Array.from(input.x));
      expect(texts).to.deep.equal(['off']);
    });

    it('should send a class with no training rows to a Catch node', async function () {
      // C has only its 2 validation rows: target trunc(10 * 1) = 10, nothing to copy from.
      await helper.load(STAGES, flow({ type: 'classifier-upsampler', ratio: 1 }));
      const texts = statusTexts('s1');
      const caught = nextInput('caught');
      helper.getNode('s1').receive({ payload: dataSet({ A: 10, B: 5, C: 0 }) });

      const text = caughtText(await caught);
      await settle();
      expect(text).to.match(/^upsampling: class "C" has no training rows to upsample from/);
      expect(texts[texts.length - 1]).to.match(/^failed: /);
    });
  });

  describe('classifier-mixup', function () {
    it('should blend a quarter of the train rows and leave the other parts as they were', async function () {
      // 120 training rows carry a label: trunc(0.25 * 120) = 30 are blended.
      const input = case1();
      const { data, summary, texts } = await run(
        { type: 'classifier-mixup', enabled: true },
        { payload: input },
      );

      expect(data.rows).to.equal(127);
      expect(texts).to.deep.equal(['mixed 30']);
      expect(partRows(data, Part.validation)).to.deep.equal(partRows(input, Part.validation));
      expect(partRows(data, Part.test)).to.deep.equal(partRows(input, Part.test));
      expect(partRows(data, Part.train)).not.to.deep.equal(partRows(input, Part.train));
      expect(summary.parts).to.deep.equal({ train: 120, validation: 6, test: 1 });

      const direct = await lastValueFrom(of(input).pipe(mixup(true)));
      expect(Array.from(data.x)).to.deep.equal(Array.from(direct.x));
      expect(Array.from(data.y)).to.deep.equal(Array.from(direct.y));
    });

    it('should pass data sets through when switched off', async function () {
      const input = case1();
      const { data, texts } = await run(
        { type: 'classifier-mixup', enabled: false },
        { payload: input },
      );
      expect(Array.from(data.x)).to.deep.equal(Array.from(input.x));
      expect(Array.from(data.y)).to.deep.equal(Array.from(input.y));
      expect(texts).to.deep.equal(['off']);
    });

    it('should send a payload that is not a data set to a Catch node', async function () {
      await helper.load(STAGES, flow({ type: 'classifier-mixup' }));
      const caught = nextInput('caught');
      helper.getNode('s1').receive({ payload: 'not a data set' });
      expect(caughtText(await caught)).to.match(/^msg.payload: expected a data set .* got string$/);
    });
    it('should accept a data set that Node-RED copied for a second wire', async function () {
      // The message to the second wire is a deep copy: plain objects, not the frozen data set.
      const input = case1();
      await helper.load(
        STAGES,
        flow(
          { type: 'classifier-mixup' },
          { id: 'up', type: 'classifier-upsampler', ratio: 0.5, wires: [['first', 's1']] },
          { id: 'first', type: 'helper' },
        ),
      );
      const output = nextInput('out');
      helper.getNode('up').receive({ payload: input });

      const data = (await output).payload as DataSet;
      const direct = await lastValueFrom(
        of(input).pipe(upsample({ ratio: 0.5, mode: 'repeat' }), mixup(true)),
      );
      expect(data.rows).to.equal(207);
      expect(Array.from(data.y)).to.deep.equal(Array.from(direct.y));
    });
  });

  describe('classifier-label-smoothing', function () {
    it('should smooth the train labels only', async function () {
      // K = 3, alpha 0.1: 1 -> 0.9, 0 -> 0.1 / 2 = 0.05.
      const input = case1();
      const { data, summary, texts } = await run(
        { type: 'classifier-label-smoothing', alpha: '0.1' },
        { payload: input },
      );

      const k = 3;
      for (let r = 0; r < data.rows; r++) {
        const row = Array.from(data.y.subarray(r * k, (r + 1) * k));
        const given = Array.from(input.y.subarray(r * k, (r + 1) * k));
        const expected =
          data.parts[r] === Part.train
            ? given.map((v) => Math.fround(v === 1 ? 0.9 : 0.05))
            : given;
        expect(row, `row ${r}`).to.deep.equal(expected);
      }
      expect(Array.from(data.x)).to.deep.equal(Array.from(input.x));
      // A smoothed 0.9 still marks a sample of its class: the counts stay 100, 10, 10.
      expect(trainClassCounts(summary)).to.deep.equal([100, 10, 10]);
      expect(texts).to.deep.equal(['smoothed']);

      const direct = await lastValueFrom(of(input).pipe(smooth(true, 0.1)));
      expect(Array.from(data.y)).to.deep.equal(Array.from(direct.y));
    });

    it('should send a payload that is not a data set to a Catch node', async function () {
      await helper.load(STAGES, flow({ type: 'classifier-label-smoothing' }));
      const caught = nextInput('caught');
      helper.getNode('s1').receive({ payload: { x: [1, 2] } });
      expect(caughtText(await caught)).to.match(/^msg.payload: expected a data set/);
    });
  });

  describe('in one flow', function () {
    it('should load, upsample, mix and smooth the frog table', async function () {
      const csv = sharedData(this, 'anuran-mfcc', 'Frogs_MFCCs.csv');
      // Species counts in the file, and train = max(1, trunc(n * 0.8)), validation = the rest:
      //   AdenomeraAndre 672 -> 537/135       AdenomeraHylaedactylus 3478 -> 2782/696
      //   Ameeregatrivittata 542 -> 433/109   HylaMinuta 310 -> 248/62
      //   HypsiboasCinerascens 472 -> 377/95  HypsiboasCordobae 1121 -> 896/225
      //   LeptodactylusFuscus 270 -> 216/54   OsteocephalusOophagus 114 -> 91/23
      //   Rhinellagranulosa 68 -> 54/14       ScinaxRuber 148 -> 118/30
      // Train 5752, validation 1443. Upsampling target trunc(2782 * 0.5) = 1391: nine classes
      // rise to 1391, train 2782 + 9 * 1391 = 15301, rows 15301 + 1443 = 16744 (+9549).
      // Mixup blends trunc(0.25 * 15301) = 3825 rows; smoothing leaves no train label at 1.
      const validation = [135, 696, 109, 62, 95, 225, 54, 23, 14, 30];
      await helper.load(
        [loaderNode, ...STAGES],
        asFlow([
          {
            id: 'load',
            type: 'classifier-loader',
            path: csv,
            labelColumn: 'Species',
            seed: 1,
            wires: [['up']],
          },
          { id: 'up', type: 'classifier-upsampler', ratio: 0.5, wires: [['mix']] },
          { id: 'mix', type: 'classifier-mixup', enabled: true, wires: [['smooth']] },
          { id: 'smooth', type: 'classifier-label-smoothing', wires: [['out']] },
          { id: 'out', type: 'helper' },
        ]),
      );
      const texts = ['load', 'up', 'mix', 'smooth'].map(statusTexts);
      const output = nextInput('out');

      helper.getNode('load').receive({ payload: 'go' });
      const msg = await output;
      await settle();

      const data = msg.payload as DataSet;
      const summary = msg.summary as DataSetSummary;
      expect([data.rows, data.dim, data.labels.length, data.seed]).to.deep.equal([
        16744, 22, 10, 1,
      ]);
      expect(summary.parts).to.deep.equal({ train: 15301, validation: 1443, test: 0 });
      expect(Object.values(summary.perClass).map((c) => c.validation)).to.deep.equal(validation);
      const k = data.labels.length;
      const trainOnes = Array.from(data.parts).filter(
        (p, r) => p === Part.train && data.y.subarray(r * k, (r + 1) * k).includes(1),
      );
      expect(trainOnes).to.have.length(0);
      expect(texts).to.deep.equal([
        ['loading', '7195 x 10'],
        ['16744 rows (+9549)'],
        ['mixed 3825'],
        ['smoothed'],
      ]);
      // Each stage records its settings on the data set, for the model's hyperparameters.
      expect(data.settings).to.deep.equal({
        'Validation split': 0.2,
        Seed: 1,
        'Upsampling ratio': 0.5,
        'Upsampling mode': 'repeat',
        'Use mixup': true,
        'Use label smoothing': true,
        'Label smoothing alpha': 0.1,
      });
    });
  });
});
