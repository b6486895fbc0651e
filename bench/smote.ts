/**
 * SMOTE upsampling time (k = 5 neighbours of the same class, ratio 0.5) against
 * imbalanced-learn's SMOTE where it is installed (Debian: apt-get install python3-imblearn),
 * given the same rows and the same per-class targets.
 *
 * Cases: the UCI anuran-calls table (7195 rows x 22 MFCCs, label column Species) when
 * ../shared/data holds it, and 50,000 synthetic rows x 1024 in 10 classes of 20000, 10000, 6000,
 * 4000, 3000, 2500, 1500, 1200, 1000 and 800 rows. Every row is a training row.
 *
 * Each side runs BENCH_ROUNDS times in one process (default 21 on the anuran table, whose runs
 * take a few tens of milliseconds, so that a pause of the machine moves the median less; 7 on
 * the synthetic rows) and reports the median, and the ratios of the first runs and of the medians
 * of the later runs apart: the first runs of a process pay for compiling code (and ours for
 * starting the worker thread of the neighbour search).
 * Prints one JSON line per case. Environment: BENCH_PYTHON as for train-speed.ts;
 * BENCH_SMOTE_CASES, a comma-separated list of case names to run (default: all).
 */
import { execFileSync } from 'child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { loadavg, tmpdir } from 'os';
import { join } from 'path';
import { upsample } from '../src/augment';
import { DataSet, createDataSet } from '../src/dataset/dataset';
import { loadDataSet } from '../src/dataset/load';
import { findPeer } from './python-peer';
import { Random } from '../src/random';
import { initBackend } from '../src/train/backend';

const RATIO = 0.5;
const K = 5;
const FROGS = join(__dirname, '..', '..', 'shared', 'data', 'anuran-mfcc', 'Frogs_MFCCs.csv');
const SYNTHETIC_COUNTS = [20000, 10000, 6000, 4000, 3000, 2500, 1500, 1200, 1000, 800];
const DIM = 1024;
const ROUNDS =
  process.env.BENCH_ROUNDS === undefined ? undefined : Number(process.env.BENCH_ROUNDS);

function write(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

/** Rows near one random centre per class (uniform noise of width 1), classes in blocks. */
function synthetic(): DataSet {
  const random = new Random('bench/smote');
  const rows = SYNTHETIC_COUNTS.reduce((a, b) => a + b, 0);
  const classes = SYNTHETIC_COUNTS.length;
  const x = new Float32Array(rows * DIM);
  const y = new Float32Array(rows * classes);
  let row = 0;
  SYNTHETIC_COUNTS.forEach((count, c) => {
    const centre = Float32Array.from({ length: DIM }, () => random.uniform() * 2 - 1);
    for (let i = 0; i < count; i++, row++) {
      for (let j = 0; j < DIM; j++) x[row * DIM + j] = centre[j] + random.uniform() - 0.5;
      y[row * classes + c] = 1;
    }
  });
  const labels = SYNTHETIC_COUNTS.map((n, c) => `class ${c} (${n})`);
  return createDataSet({ x, y, dim: DIM, labels, seed: 1 });
}

/** Class index of each row (single-label data), and each short class's target row count. */
function classesOf(data: DataSet): { y: Int32Array; targets: Record<number, number> } {
  const classes = data.labels.length;
  const y = new Int32Array(data.rows);
  const counts = new Array<number>(classes).fill(0);
  for (let r = 0; r < data.rows; r++) {
    for (let c = 0; c < classes; c++) if (data.y[r * classes + c] === 1) y[r] = c;
    counts[y[r]]++;
  }
  const target = Math.trunc(Math.max(...counts) * RATIO);
  const targets: Record<number, number> = {};
  counts.forEach((n, c) => {
    if (n < target) targets[c] = target;
  });
  return { y, targets };
}

function runPeer(python: string, data: DataSet, runs: number): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-smote-'));
  try {
    const { y, targets } = classesOf(data);
    writeFileSync(join(dir, 'x.f32'), data.x);
    writeFileSync(join(dir, 'y.i32'), y);
    writeFileSync(join(dir, 'data.json'), JSON.stringify({ dim: data.dim, targets, runs }));
    const out = execFileSync(python, [join(__dirname, 'peer_smote.py'), dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runOurs(
  data: DataSet,
  rounds: number,
): Promise<{ seconds: number; runs: number[]; rowsOut: number }> {
  const runs: number[] = [];
  let rowsOut = 0;
  for (let run = 0; run < rounds; run++) {
    // Garbage of loading and of earlier runs is collected outside the timed part (npm run bench
    // starts node with --expose-gc), as on the peer's side.
    (globalThis as { gc?: () => void }).gc?.();
    const start = performance.now();
    const random = new Random(`bench/smote/${run}`);
    rowsOut = (await upsample(data, { ratio: RATIO, mode: 'smote', k: K, random })).rows;
    runs.push((performance.now() - start) / 1000);
  }
  return { seconds: median(runs), runs: runs.map((s) => round(s, 3)), rowsOut };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const peer = findPeer('imblearn');
  const cases: [string, number, () => Promise<DataSet | undefined>][] = [
    [
      'anuran-mfcc',
      21,
      async () =>
        existsSync(FROGS)
          ? loadDataSet(FROGS, { labelColumn: 'Species', validationSplit: 0 })
          : undefined,
    ],
    ['synthetic-50000x1024', 7, () => Promise.resolve(synthetic())],
  ];
  const only = process.env.BENCH_SMOTE_CASES?.split(',');
  for (const [name, defaultRounds, make] of cases) {
    const rounds = ROUNDS ?? defaultRounds;
    if (only !== undefined && !only.includes(name)) continue;
    const data = await make();
    if (data === undefined) {
      write({ bench: 'smote', case: name, skipped: `${FROGS} is missing` });
      continue;
    }
    const loadBefore = loadavg();
    const ours = await runOurs(data, rounds);
    const result: Record<string, unknown> = {
      bench: 'smote',
      case: name,
      rows: data.rows,
      dim: data.dim,
      classes: data.labels.length,
      backend,
      ours: { ...ours, seconds: round(ours.seconds, 3) },
    };
    if (peer.python !== undefined) {
      const theirs = runPeer(peer.python, data, rounds);
      result.imblearn = { ...theirs, seconds: round(theirs.seconds as number, 3) };
      result.ratioOursToImblearn = round(ours.seconds / (theirs.seconds as number), 2);
      // The first run of a process pays for compiling code on both sides: each part apart.
      const oursRuns = ours.runs;
      const theirRuns = theirs.runs as number[];
      result.ratioFirstRun = round(oursRuns[0] / theirRuns[0], 2);
      result.ratioLaterRuns = round(median(oursRuns.slice(1)) / median(theirRuns.slice(1)), 2);
    } else {
      result.imblearn = `skipped: ${peer.reason}`;
    }
    result.loadAverage = {
      before: loadBefore.map((l) => round(l, 2)),
      after: loadavg().map((l) => round(l, 2)),
    };
    write(result);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
