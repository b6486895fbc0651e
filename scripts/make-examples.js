'use strict';
// Writes the synthetic data and the small model that the example flows use (example-data/), from the demo
// generator, so the examples run on a fresh install. Run after `npm run build`.
const path = require('path');
const { writeDemoData, writeDemoTable } = require('../dist/src/demo');
const { writeSyntheticRecordings } = require('../dist/src/audio/synthetic');
const { runTrain } = require('../dist/src/cli');

const examples = path.join(__dirname, '..', 'example-data');

async function main() {
  await writeDemoData(path.join(examples, 'embeddings'), 1);
  await writeDemoTable(path.join(examples, 'table.csv'), 2);
  // Small enough to ship: 4 clips of 3 s per folder at 16 kHz, about 2 MB in all.
  await writeSyntheticRecordings(path.join(examples, 'recordings'), {
    seed: 3,
    clipsPerClass: 4,
    seconds: 3,
  });
  const trained = await runTrain({
    data: path.join(examples, 'embeddings'),
    out: path.join(examples, 'model'),
    labelSeparator: ',',
    epochs: 50,
    batchSize: 32,
    learningRate: 0.01,
    validationSplit: 0.2,
    hiddenUnits: 0,
    dropout: 0,
    focalLoss: false,
    focalLossGamma: 2,
    focalLossAlpha: 0.25,
    labelSmoothing: false,
    labelSmoothingAlpha: 0.1,
    mixup: false,
    upsamplingRatio: 0,
    upsamplingMode: 'repeat',
    l2: 1e-5,
    weightDecay: 0.004,
    seed: 1,
    quiet: true,
    backend: 'cpu',
  });
  process.stdout.write(`example model: ${trained.dir}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
