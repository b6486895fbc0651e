/**
 * Peak memory and event-loop stalls of the whole training flow in a real Node-RED runtime:
 * loader -> (fan-out to two wires) -> upsampler -> mixup -> label smoothing -> trainer (2 epochs)
 * -> evaluator, on a synthetic data set of 50,000 x 1024 embeddings in 50 classes.
 * Prints one JSON object.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import helper from 'node-red-node-test-helper';
import nodeRed from 'node-red';
import { Random } from '../src/random';
import { initBackend } from '../src/train/backend';
import { trainingCacheBytes } from './npz-writer';
import loader from '../nodes/loader/loader';
import upsampler from '../nodes/upsampler/upsampler';
import mixup from '../nodes/mixup/mixup';
import smoothing from '../nodes/label-smoothing/label-smoothing';
import trainer from '../nodes/trainer/trainer';
import evaluator from '../nodes/evaluator/evaluator';
import { copyTypedArraysWhole } from '../nodes/shared/message-copy';
import { EventEmitter } from 'events';

const ROWS = Number(process.env.BENCH_ROWS ?? 50000);
const DIM = 1024;
const CLASSES = 50;

/** Resident-set high-water mark of this process, in MiB (Linux). */
function peakRssMiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Class c gets a share falling linearly from 1.5 to 0.5 of the mean; rows near its centre. */
function syntheticData(): { x: Float32Array; y: Float32Array; labels: string[] } {
  const random = new Random('bench/flow');
  const weights = Array.from({ length: CLASSES }, (_, c) => 1.5 - c / (CLASSES - 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const centres = Array.from({ length: CLASSES }, () =>
    Float32Array.from({ length: DIM }, () => random.uniform() * 2 - 1),
  );
  const x = new Float32Array(ROWS * DIM);
  const y = new Float32Array(ROWS * CLASSES);
  let row = 0;
  weights.forEach((w, c) => {
    const n = c === CLASSES - 1 ? ROWS - row : Math.round((ROWS * w) / total);
    for (let i = 0; i < n && row < ROWS; i++, row++) {
      for (let j = 0; j < DIM; j++) x[row * DIM + j] = centres[c][j] + random.uniform() - 0.5;
      y[row * CLASSES + c] = 1;
    }
  });
  return { x, y, labels: Array.from({ length: CLASSES }, (_, c) => `class ${c}`) };
}

/** Gaps between 10 ms ticks beyond their due time: how long the event loop was held. */
function stallRecorder() {
  const stalls: { at: number; ms: number }[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    stalls.push({ at: now, ms: now - last - 10 });
    last = now;
  }, 10);
  return {
    stop: () => clearInterval(timer),
    longest: (from: number, to: number) =>
      Math.max(0, ...stalls.filter((s) => s.at >= from && s.at <= to).map((s) => s.ms)),
  };
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'bench-flow-'));
  const cache = join(dir, 'cache.npz');
  const data = syntheticData();
  writeFileSync(cache, trainingCacheBytes(data.x, data.y, DIM, data.labels));
  const dataMiB = (data.x.byteLength + data.y.byteLength) / 2 ** 20;

  helper.init(require.resolve('node-red'));
  // The nodes add this hook through their node API, which in a real runtime carries the hooks
  // and in the test helper's does not.
  copyTypedArraysWhole(nodeRed);
  await new Promise<void>((resolve) => helper.startServer(() => resolve()));
  const nodes = [loader, upsampler, mixup, smoothing, trainer, evaluator];
  const flow = [
    {
      id: 'load',
      type: 'classifier-loader',
      path: cache,
      pathType: 'str',
      format: 'npz',
      validationSplit: 0.2,
      seed: 1,
      wires: [['up', 'copy']],
    },
    { id: 'copy', type: 'helper' },
    { id: 'up', type: 'classifier-upsampler', ratio: 0.5, mode: 'repeat', wires: [['mix']] },
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
      epochs: 2,
      batchSize: 32,
      learningRate: 0.001,
      hiddenUnits: 0,
      dropout: 0,
      focalLoss: false,
      focalGamma: 2,
      focalAlpha: 0.25,
      l2: 1e-5,
      weightDecay: 0.004,
      allowNoValidation: false,
      modelDir: join(dir, 'model'),
      modelDirType: 'str',
      busy: 'queue',
      queueLength: 1,
      wires: [['eval'], ['progress']],
    },
    { id: 'progress', type: 'helper' },
    {
      id: 'eval',
      type: 'classifier-evaluator',
      part: 'auto',
      modelDir: '',
      modelDirType: 'str',
      csvFile: '',
      plotFolder: '',
      charts: true,
      wires: [['end']],
    },
    { id: 'end', type: 'helper' },
  ];
  await helper.load(nodes, flow);

  const stalls = stallRecorder();
  const marks: Record<string, number> = {};
  helper.getNode('train').on('input', () => (marks.trainStart ??= performance.now()));
  helper.getNode('progress').on('input', () => {
    marks.firstEpoch ??= performance.now();
    marks.lastEpoch = performance.now();
  });
  helper.getNode('eval').on('input', () => (marks.evalStart ??= performance.now()));
  const finished = new Promise<void>((resolve, reject) => {
    helper.getNode('end').on('input', () => resolve());
    for (const id of ['load', 'up', 'mix', 'smooth', 'train', 'eval']) {
      const node = helper.getNode(id) as unknown as EventEmitter;
      node.on('call:error', (call: { args: unknown[] }) => reject(call.args[0]));
    }
  });
  const start = performance.now();
  helper.getNode('load').receive({});
  await finished;
  marks.end = performance.now();
  stalls.stop();

  const result = {
    bench: 'flow-memory',
    backend,
    rows: ROWS,
    dim: DIM,
    classes: CLASSES,
    epochs: 2,
    fanOut: 'loader output wired to two nodes (one deep copy)',
    dataMiB: Number(dataMiB.toFixed(1)),
    peakRssMiB: Number(peakRssMiB().toFixed(1)),
    peakRssOverData: Number((peakRssMiB() / dataMiB).toFixed(2)),
    seconds: Number(((marks.end - start) / 1000).toFixed(1)),
    longestStallTrainingMs: Math.round(stalls.longest(marks.trainStart, marks.evalStart)),
    longestStallWholeFlowMs: Math.round(stalls.longest(start, marks.end)),
    // Where the flow spends the event loop, stage by stage: the longest stall in each span.
    longestStallMs: {
      loadAndAugment: Math.round(stalls.longest(start, marks.trainStart)),
      trainerUntilFirstEpochDone: Math.round(stalls.longest(marks.trainStart, marks.firstEpoch)),
      laterEpochs: Math.round(stalls.longest(marks.firstEpoch, marks.lastEpoch)),
      evaluateAndSave: Math.round(stalls.longest(marks.lastEpoch, marks.evalStart)),
      evaluatorNode: Math.round(stalls.longest(marks.evalStart, marks.end)),
    },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);

  await helper.unload();
  await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
