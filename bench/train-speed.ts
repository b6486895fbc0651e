/**
 * Training speed of the classifier head on the default backend, against PyTorch where it is
 * installed (Debian: apt-get install python3-torch libopenblas0-pthread).
 *
 * Cases: 5000 training rows (plus 1250 validation rows) x 1024 in 50 classes with hidden 512 and
 * with hidden 0, one warm-up epoch and 3 timed ones, in several rounds that alternate our run and
 * PyTorch's; and 40,000 + 10,000 rows x 1024 in 500 classes, hidden 512, one epoch. Each run is a
 * child process of its own, so its peak RSS is its own. Batch 32, AdamW, cross-entropy, L2 1e-5,
 * validation every epoch: the package's defaults.
 *
 * GFLOP/s counts 2 m k n per matrix product that training needs: forward, the weight gradients
 * and the input gradient of the output layer (the first layer's input needs none), and the
 * validation forward pass.
 *
 * Prints one JSON line per case. Environment: BENCH_ROUNDS (default 3), BENCH_CASES (comma
 * separated names), BENCH_PYTHON (the interpreter with torch; default /usr/bin/python3, then
 * python3).
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { loadavg, tmpdir } from 'os';
import { join } from 'path';
import { lastValueFrom, toArray } from 'rxjs';
import { Part, createDataSet } from '../src/dataset/dataset';
import { findPeer } from './python-peer';
import { Random } from '../src/random';
import { initBackend } from '../src/train/backend';
import { DEFAULT_TRAIN_OPTIONS, trainClassifier } from '../src/train/trainer';

interface Case {
  name: string;
  trainRows: number;
  validationRows: number;
  dim: number;
  classes: number;
  hidden: number;
  /** Epochs whose time is not counted. */
  warmup: number;
  timed: number;
  rounds: number;
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CASES: Case[] = [
  {
    name: 'hidden-512',
    trainRows: 5000,
    validationRows: 1250,
    dim: 1024,
    classes: 50,
    hidden: 512,
  },
  { name: 'hidden-0', trainRows: 5000, validationRows: 1250, dim: 1024, classes: 50, hidden: 0 },
].map((c) => ({ ...c, warmup: 1, timed: 3, rounds: ROUNDS }));
CASES.push({
  name: 'large',
  trainRows: 40000,
  validationRows: 10000,
  dim: 1024,
  classes: 500,
  hidden: 512,
  warmup: 0,
  timed: 1,
  rounds: 1,
});

/** What one run (ours or PyTorch's) reports. */
interface RunReport {
  secondsPerEpoch: number[];
  peakRssMiB: number;
  [key: string]: unknown;
}

function write(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

/** Resident-set high-water mark of this process, in MiB (Linux). */
function peakRssMiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Floating-point operations of one epoch, counting 2 m k n per matrix product. */
function flopsPerEpoch(c: Case): number {
  const { dim: d, hidden: h, classes: k } = c;
  const products = h > 0 ? d * h + h * k : d * k;
  const inputGradient = h > 0 ? h * k : 0;
  return 2 * c.trainRows * (2 * products + inputGradient) + 2 * c.validationRows * products;
}

/**
 * Rows near one of `classes` random centres (uniform noise of width 1), one class each, classes
 * taking turns; written as raw float32 files with a JSON description.
 */
function writeData(c: Case, dir: string): void {
  const random = new Random(`bench/train-speed/${c.name}`);
  const centres = Array.from({ length: c.classes }, () =>
    Float32Array.from({ length: c.dim }, () => random.uniform() * 2 - 1),
  );
  const part = (rows: number, name: string) => {
    const x = new Float32Array(rows * c.dim);
    const y = new Float32Array(rows * c.classes);
    for (let r = 0; r < rows; r++) {
      const k = r % c.classes;
      for (let j = 0; j < c.dim; j++) x[r * c.dim + j] = centres[k][j] + random.uniform() - 0.5;
      y[r * c.classes + k] = 1;
    }
    writeFileSync(join(dir, `x_${name}.f32`), x);
    writeFileSync(join(dir, `y_${name}.f32`), y);
  };
  part(c.trainRows, 'train');
  part(c.validationRows, 'validation');
  const o = DEFAULT_TRAIN_OPTIONS;
  writeFileSync(
    join(dir, 'data.json'),
    JSON.stringify({
      trainRows: c.trainRows,
      validationRows: c.validationRows,
      dim: c.dim,
      classes: c.classes,
      batchSize: o.batchSize,
      learningRate: o.learningRate,
      weightDecay: o.weightDecay,
      l2: o.l2,
    }),
  );
}

function readFloats(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Our run, in a child process: trains on the files in `dir` and prints a {@link RunReport}. */
async function child(dir: string, hidden: number, epochs: number): Promise<void> {
  const backend = await initBackend();
  const spec = JSON.parse(readFileSync(join(dir, 'data.json'), 'utf8')) as Case;
  const x = new Float32Array((spec.trainRows + spec.validationRows) * spec.dim);
  x.set(readFloats(join(dir, 'x_train.f32')));
  x.set(readFloats(join(dir, 'x_validation.f32')), spec.trainRows * spec.dim);
  const y = new Float32Array((spec.trainRows + spec.validationRows) * spec.classes);
  y.set(readFloats(join(dir, 'y_train.f32')));
  y.set(readFloats(join(dir, 'y_validation.f32')), spec.trainRows * spec.classes);
  const parts = new Uint8Array(spec.trainRows + spec.validationRows).fill(Part.train);
  parts.fill(Part.validation, spec.trainRows);
  const data = createDataSet({
    x,
    y,
    dim: spec.dim,
    labels: Array.from({ length: spec.classes }, (_, k) => `class ${k}`),
    parts,
    seed: 1,
  });

  const events = await lastValueFrom(
    trainClassifier(data, { epochs, hiddenUnits: hidden }).pipe(toArray()),
  );
  const seconds: number[] = [];
  for (const event of events) {
    if (event.type === 'epoch') seconds.push(event.seconds);
    else event.result.model.dispose();
  }
  write({ secondsPerEpoch: seconds, peakRssMiB: round(peakRssMiB(), 1), backend });
}

function runOurs(dir: string, c: Case): RunReport {
  const out = execFileSync(
    process.execPath,
    [
      '-r',
      'ts-node/register/transpile-only',
      __filename,
      '--child',
      dir,
      String(c.hidden),
      String(c.warmup + c.timed),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  return JSON.parse(out.trim().split('\n').at(-1)!) as RunReport;
}

function runPeer(python: string, dir: string, c: Case): RunReport {
  const script = join(__dirname, 'peer_torch.py');
  const out = execFileSync(python, [script, dir, String(c.hidden), String(c.warmup + c.timed)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as RunReport;
}

/** Median epoch seconds of one run, without its warm-up epochs. */
function epochSeconds(report: RunReport, c: Case): number {
  return median(report.secondsPerEpoch.slice(c.warmup));
}

function summary(c: Case, runs: RunReport[]) {
  const seconds = median(runs.map((r) => epochSeconds(r, c)));
  return {
    secondsPerEpoch: round(seconds, 3),
    gflops: round(flopsPerEpoch(c) / seconds / 1e9, 2),
    peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
    runs: runs.map((r) => round(epochSeconds(r, c), 3)),
  };
}

async function main(): Promise<void> {
  const peer = findPeer('torch');
  const wanted = process.env.BENCH_CASES?.split(',');
  for (const c of CASES.filter((x) => wanted === undefined || wanted.includes(x.name))) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-train-'));
    try {
      writeData(c, dir);
      const loadBefore = loadavg();
      const ours: RunReport[] = [];
      const theirs: RunReport[] = [];
      for (let r = 0; r < c.rounds; r++) {
        ours.push(runOurs(dir, c));
        if (peer.python !== undefined) theirs.push(runPeer(peer.python, dir, c));
      }
      const result: Record<string, unknown> = {
        bench: 'train-speed',
        case: c.name,
        trainRows: c.trainRows,
        validationRows: c.validationRows,
        dim: c.dim,
        classes: c.classes,
        hidden: c.hidden,
        batchSize: DEFAULT_TRAIN_OPTIONS.batchSize,
        epochsTimed: c.timed,
        rounds: c.rounds,
        backend: ours[0].backend,
        ours: summary(c, ours),
      };
      if (theirs.length > 0) {
        const ratios = ours.map((run, i) => epochSeconds(run, c) / epochSeconds(theirs[i], c));
        result.pytorch = {
          ...summary(c, theirs),
          torch: theirs[0].torch,
          threads: theirs[0].threads,
          blas: theirs[0].blas,
        };
        result.ratioOursToPytorch = round(median(ratios), 2);
      } else {
        result.pytorch = `skipped: ${peer.reason}`;
      }
      result.loadAverage = {
        before: loadBefore.map((l) => round(l, 2)),
        after: loadavg().map((l) => round(l, 2)),
      };
      write(result);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const args = process.argv.slice(2);
const run = args[0] === '--child' ? child(args[1], Number(args[2]), Number(args[3])) : main();
run.catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
