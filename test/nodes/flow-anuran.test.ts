import { expect } from 'chai';
import { execFile } from 'child_process';
import { EventEmitter } from 'events';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import type { NodeMessage, NodeStatus } from 'node-red';
import evaluatorNode from '../../nodes/evaluator/evaluator';
import labelSmoothingNode from '../../nodes/label-smoothing/label-smoothing';
import loaderNode from '../../nodes/loader/loader';
import mixupNode from '../../nodes/mixup/mixup';
import predictNode from '../../nodes/predict/predict';
import trainerNode from '../../nodes/trainer/trainer';
import upsamplerNode from '../../nodes/upsampler/upsampler';
import { DataSet, Part } from '../../src/dataset/dataset';
import { CLI, sharedData } from '../helpers';
import { helper, useNodeRed } from './harness';

const run = promisify(execFile);

const NODES = [
  loaderNode,
  upsamplerNode,
  mixupNode,
  labelSmoothingNode,
  trainerNode,
  evaluatorNode,
  predictNode,
];

/** The 10 species of the frog-call table, as labels.txt lists them (sorted). */
const SPECIES = [
  'AdenomeraAndre',
  'AdenomeraHylaedactylus',
  'Ameeregatrivittata',
  'HylaMinuta',
  'HypsiboasCinerascens',
  'HypsiboasCordobae',
  'LeptodactylusFuscus',
  'OsteocephalusOophagus',
  'Rhinellagranulosa',
  'ScinaxRuber',
];

/** Frog rows sent to the predict node once it has the new model. */
const PREDICT_ROWS = 5;

interface Macro {
  averagePrecision: number;
  [metric: string]: unknown;
}

interface PartReport {
  macro: Macro;
  top1: number;
  rows: number;
  classes: unknown[];
}

interface TrainerResult {
  modelDir: string;
  labels: string[];
  epochsRun: number;
  backend: string;
  predictions: { validation: { scores: Float32Array; rows: number } };
}

/**
 * The loader, the three stages, the trainer, the evaluator and predict, in the recipe of the
 * command line's `train --label-column Species --hidden-units 512 --focal-loss --upsampling-mode
 * smote --upsampling-ratio 0.5 --mixup --label-smoothing --seed 1` (50 epochs, batch 32, learning
 * rate 1e-4 and validation split 0.2 by default). Helpers: `loaded` (the data set), `result`
 * (the trainer's result), `evaluated`, `predicted` and `caught` (any error).
 */
function flow(csv: string, modelDir: string) {
  return [
    {
      id: 'load',
      type: 'classifier-loader',
      path: csv,
      pathType: 'str',
      labelColumn: 'Species',
      seed: 1,
      validationSplit: 0.2,
      wires: [['up', 'loaded']],
    },
    { id: 'loaded', type: 'helper' },
    { id: 'up', type: 'classifier-upsampler', ratio: 0.5, mode: 'smote', wires: [['mix']] },
    { id: 'mix', type: 'classifier-mixup', enabled: true, wires: [['smooth']] },
    {
      id: 'smooth',
      type: 'classifier-label-smoothing',
      enabled: true,
      alpha: 0.1,
      wires: [['train']],
    },
    {
      id: 'train',
      type: 'classifier-trainer',
      hiddenUnits: 512,
      focalLoss: true,
      modelDir,
      modelDirType: 'str',
      wires: [['eval', 'predict', 'result'], []],
    },
    { id: 'result', type: 'helper' },
    { id: 'eval', type: 'classifier-evaluator', part: 'auto', wires: [['evaluated']] },
    { id: 'evaluated', type: 'helper' },
    { id: 'predict', type: 'classifier-predict', modelDir: '', wires: [['predicted']] },
    { id: 'predicted', type: 'helper' },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper' },
  ];
}

/** Messages a helper node receives from now on. */
function inputs(id: string): NodeMessage[] {
  const received: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => received.push(msg));
  return received;
}

/** Status texts of a node from now on (the test helper reports each call). */
function statusTexts(id: string): string[] {
  const texts: string[] = [];
  (helper.getNode(id) as unknown as EventEmitter).on(
    'call:status',
    (call: { args: [NodeStatus] }) => texts.push(String(call.args[0].text ?? '')),
  );
  return texts;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` holds, failing on the first error a Catch node received. */
async function until(
  check: () => boolean,
  caught: NodeMessage[],
  what: string,
  ms: number,
): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (caught.length > 0) {
      throw new Error(`${what}: ${(caught[0].error as { message: string }).message}`);
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * The command line's run of the same recipe into `out`, in a second process, started at once;
 * `finished` resolves with its seconds.
 */
function cliTraining(csv: string, out: string) {
  const started = Date.now();
  const pending = run(
    process.execPath,
    [
      CLI,
      'train',
      '--data',
      csv,
      '--label-column',
      'Species',
      '--hidden-units',
      '512',
      '--focal-loss',
      '--upsampling-mode',
      'smote',
      '--upsampling-ratio',
      '0.5',
      '--mixup',
      '--label-smoothing',
      '--seed',
      '1',
      '--out',
      out,
      '--quiet',
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const finished = pending.then(() => (Date.now() - started) / 1000);
  // A failure surfaces where the test awaits it, not as an unhandled rejection meanwhile.
  finished.catch(() => undefined);
  return { finished, child: pending.child };
}

/** The rows of history.csv without the Seconds column, which differs between any two runs. */
function historyWithoutSeconds(dir: string): string[] {
  const lines = readFileSync(join(dir, 'history.csv'), 'utf8').trim().split('\n');
  const seconds = lines[0].split(',').indexOf('Seconds');
  expect(seconds, 'Seconds column').to.be.above(0);
  return lines.map((line) =>
    line
      .split(',')
      .filter((_, i) => i !== seconds)
      .join(','),
  );
}

function validationOf(dir: string): PartReport {
  const json = JSON.parse(readFileSync(join(dir, 'evaluation.json'), 'utf8')) as {
    validation: PartReport;
  };
  return json.validation;
}

/**
 * The frog-call table (7195 rows x 22 MFCCs, 10 species) through a flow of all seven nodes, while
 * the command line trains on it with the same recipe in a second process: one run per core, each
 * single-threaded. Same seed, same backend: the same model and figures.
 */
describe('a flow of the seven nodes on the frog calls', function () {
  useNodeRed();
  this.timeout(10 * 60 * 1000);
  let temp: string;
  beforeEach(() => {
    temp = mkdtempSync(join(tmpdir(), 'flow-anuran-'));
  });
  afterEach(() => {
    rmSync(temp, { recursive: true, force: true });
  });

  it('should train as the command line does, to a macro AUPRC of at least 0.95', async function () {
    const csv = sharedData(this, 'anuran-mfcc', 'Frogs_MFCCs.csv');
    const flowDir = join(temp, 'flow model');
    const cliDir = join(temp, 'cli model');

    await helper.load(NODES, flow(csv, flowDir));
    const loaded = inputs('loaded');
    const results = inputs('result');
    const evaluated = inputs('evaluated');
    const predicted = inputs('predicted');
    const caught = inputs('caught');
    const predictStatus = statusTexts('predict');

    const started = Date.now();
    const cli = cliTraining(csv, cliDir);
    let flowSeconds: number;
    let cliSeconds: number;
    try {
      helper.getNode('load').receive({ payload: 'go' });
      // The evaluator's report, and predict switched to the new model (its status names 10 labels).
      await until(
        () => evaluated.length === 1 && predictStatus.includes('10 labels'),
        caught,
        'the evaluation and the model in predict',
        9 * 60 * 1000,
      );
      flowSeconds = (Date.now() - started) / 1000;
      cliSeconds = await cli.finished;
    } finally {
      // A failed flow leaves no training process behind.
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill();
    }

    expect(loaded).to.have.length(1);
    expect(results).to.have.length(1);
    const data = loaded[0].payload as DataSet;
    const result = results[0].payload as TrainerResult;
    expect(result.modelDir).to.equal(flowDir);
    expect(result.labels).to.deep.equal(SPECIES);

    // A few validation rows of the loaded table, each as a number[] embedding in its own message.
    const validationRows: number[] = [];
    for (let r = 0; r < data.rows && validationRows.length < PREDICT_ROWS; r++) {
      if (data.parts[r] === Part.validation) validationRows.push(r);
    }
    validationRows.forEach((r, i) => {
      const embedding = Array.from(data.x.subarray(r * data.dim, (r + 1) * data.dim));
      helper.getNode('predict').receive({ payload: embedding, topic: `row ${i}` } as NodeMessage);
    });
    await until(() => predicted.length === PREDICT_ROWS, caught, 'the predictions', 30000);
    await sleep(100);
    expect(predicted).to.have.length(PREDICT_ROWS);
    expect(caught).to.have.length(0);
    predicted.forEach((msg, i) => {
      expect(msg.topic).to.equal(`row ${i}`);
      expect((msg.model as { dir: string }).dir).to.equal(flowDir);
      const scores = msg.scores as Record<string, number>;
      expect(Object.keys(scores).sort()).to.deep.equal(SPECIES);
      for (const score of Object.values(scores)) expect(score).to.be.within(0, 1);
      expect(msg.payload).to.be.an('array');
      // The model the trainer scored the validation rows with, in their order in the table.
      const k = SPECIES.length;
      const trained = result.predictions.validation.scores.subarray(i * k, (i + 1) * k);
      SPECIES.forEach((label, c) => expect(scores[label]).to.be.closeTo(trained[c], 1e-5));
    });

    // The evaluator's report is the one the flow's model directory holds.
    const report = evaluated[0].payload as PartReport & { part: string };
    expect(report.part).to.equal('validation');
    expect(report.macro.averagePrecision).to.be.at.least(0.95);
    const flowValidation = validationOf(flowDir);
    expect(JSON.parse(JSON.stringify(report.macro))).to.deep.equal(flowValidation.macro);

    // The flow and the command line trained the same model.
    const provenance = (dir: string) =>
      JSON.parse(readFileSync(join(dir, 'provenance.json'), 'utf8')) as { backend: string };
    expect(provenance(flowDir).backend).to.equal(provenance(cliDir).backend);
    expect(readFileSync(join(flowDir, 'labels.txt'), 'utf8')).to.equal(SPECIES.join('\n') + '\n');
    expect(readFileSync(join(flowDir, 'labels.txt'), 'utf8')).to.equal(
      readFileSync(join(cliDir, 'labels.txt'), 'utf8'),
    );
    const flowHistory = historyWithoutSeconds(flowDir);
    expect(flowHistory).to.have.length(result.epochsRun + 1);
    expect(flowHistory).to.deep.equal(historyWithoutSeconds(cliDir));
    const cliValidation = validationOf(cliDir);
    expect(flowValidation.macro).to.deep.equal(cliValidation.macro);

    process.stdout.write(
      `      flow: macro AUPRC ${report.macro.averagePrecision.toFixed(4)}, top-1 ` +
        `${report.top1.toFixed(4)}, ${result.epochsRun} epochs, backend ${result.backend}, ` +
        `${flowSeconds.toFixed(0)} s\n` +
        `      CLI:  macro AUPRC ${cliValidation.macro.averagePrecision.toFixed(4)}, top-1 ` +
        `${cliValidation.top1.toFixed(4)}, ${cliSeconds.toFixed(0)} s (both at once)\n`,
    );
  });
});
