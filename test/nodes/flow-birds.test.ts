import { expect } from 'chai';
import { execFile } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import type { NodeMessage } from 'node-red';
import evaluatorNode from '../../nodes/evaluator/evaluator';
import labelSmoothingNode from '../../nodes/label-smoothing/label-smoothing';
import loaderNode from '../../nodes/loader/loader';
import mixupNode from '../../nodes/mixup/mixup';
import trainerNode from '../../nodes/trainer/trainer';
import { BIRDS_RECIPE, CLI, sharedData } from '../helpers';
import { helper, useNodeRed } from './harness';

const run = promisify(execFile);

interface Macro {
  averagePrecision: number;
  [metric: string]: unknown;
}

/** The bird recordings through loader, mixup, label smoothing, trainer and evaluator. */
function flow(folder: string, modelDir: string, cacheDir: string) {
  return [
    {
      id: 'load',
      type: 'classifier-loader',
      path: folder,
      pathType: 'str',
      cropMode: 'segments',
      overlap: 2,
      cacheDir,
      seed: 1,
      validationSplit: 0.2,
      wires: [['mix', 'loaded']],
    },
    { id: 'loaded', type: 'helper' },
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
      learningRate: 0.001,
      epochs: 100,
      modelDir,
      modelDirType: 'str',
      wires: [['eval'], []],
    },
    { id: 'eval', type: 'classifier-evaluator', part: 'auto', wires: [['evaluated']] },
    { id: 'evaluated', type: 'helper' },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper' },
  ];
}

/** The first message a helper node receives, or the first error a Catch node sees. */
function first(id: string): Promise<NodeMessage> {
  return new Promise((resolve, reject) => {
    helper.getNode(id).on('input', resolve);
    helper.getNode('caught').on('input', (msg: NodeMessage) => reject(msg.error));
  });
}

/**
 * Real bird recordings (MP3, mixed rates and channels) from the loader node to an evaluated model,
 * as a flow, and the command line on the same folder with the same recipe and seed: the same
 * recordings, rows and figures.
 */
describe('a flow on the bird recordings', function () {
  useNodeRed();
  this.timeout(10 * 60 * 1000);
  let temp: string;
  beforeEach(() => {
    temp = mkdtempSync(join(tmpdir(), 'flow-birds-'));
  });
  afterEach(() => rmSync(temp, { recursive: true, force: true }));

  it('should train from the MP3 files as the command line does', async function () {
    const folder = sharedData(this, 'birds-xc');
    const flowDir = join(temp, 'flow model');
    const cliDir = join(temp, 'cli model');
    await helper.load(
      [loaderNode, mixupNode, labelSmoothingNode, trainerNode, evaluatorNode],
      flow(folder, flowDir, join(temp, 'flow cache')),
    );
    const loaded = first('loaded');
    const evaluated = first('evaluated');
    helper.getNode('load').receive({ payload: 'go' });
    const summary = (await loaded).summary as {
      rows: number;
      recordings: { files: number; embedded: number; segments: number; skipped: number };
    };
    const report = (await evaluated).payload as { part: string; macro: Macro; top1: number };

    expect(summary.recordings).to.include({ files: 60, embedded: 60, skipped: 0 });
    expect(summary.rows).to.equal(summary.recordings.segments);
    expect(report.part).to.equal('validation');

    await run(
      process.execPath,
      [
        CLI,
        'train',
        '--data',
        folder,
        ...BIRDS_RECIPE,
        '--seed',
        '1',
        '--no-cache',
        '--out',
        cliDir,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    const cli = JSON.parse(readFileSync(join(cliDir, 'evaluation.json'), 'utf8')) as {
      validation: { macro: Macro; top1: number };
    };
    expect(JSON.parse(JSON.stringify(report.macro))).to.deep.equal(cli.validation.macro);
    expect(report.macro.averagePrecision).to.be.at.least(0.55);
    process.stdout.write(
      `      flow and CLI, seed 1: macro AUPRC ${report.macro.averagePrecision.toFixed(4)}, ` +
        `top-1 ${report.top1.toFixed(4)}, ${summary.rows} segments\n`,
    );
  });
});
