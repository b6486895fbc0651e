import { expect } from 'chai';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { mixup, smoothLabels, upsample } from '../src/augment';
import { DataSet, Part, PartCode } from '../src/dataset/dataset';
import { readEmbeddingsText } from '../src/dataset/embeddings';
import { loadDataSet } from '../src/dataset/load';
import { splitParts } from '../src/dataset/split';
import { readTable } from '../src/dataset/table';
import { Random } from '../src/random';
import { refusal } from './helpers';

const NPZ_FIXTURES = join(__dirname, 'fixtures', 'npz');
const REAL_EMBEDDINGS = join(
  __dirname,
  '..',
  '..',
  'shared',
  'data',
  'birdnet-embeddings',
  'soundscape.birdnet.embeddings.txt',
);

/**
 * Case 13, fraction 0.2: train = max(1, trunc(n * 0.8)), validation = n - train, for n = 1..11.
 *   n=1: trunc(0.8)=0 -> 1/0    n=2: trunc(1.6)=1 -> 1/1    n=3: trunc(2.4)=2 -> 2/1
 *   n=4: trunc(3.2)=3 -> 3/1    n=5: trunc(4.0)=4 -> 4/1    n=6: trunc(4.8)=4 -> 4/2
 *   n=7: trunc(5.6)=5 -> 5/2    n=8: trunc(6.4)=6 -> 6/2    n=9: trunc(7.2)=7 -> 7/2
 *   n=10: trunc(8.0)=8 -> 8/2   n=11: trunc(8.8)=8 -> 8/3
 */
const CASE_13: readonly (readonly [number, number])[] = [
  [1, 0],
  [1, 1],
  [2, 1],
  [3, 1],
  [4, 1],
  [4, 2],
  [5, 2],
  [6, 2],
  [7, 2],
  [8, 2],
  [8, 3],
];

/** Writes text files under `root`, creating their folders. */
function write(root: string, files: Record<string, string | Buffer>): void {
  for (const [name, text] of Object.entries(files)) {
    const path = join(root, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}

/** A BirdNET-Analyzer embeddings file: one `start<TAB>end<TAB>v1,v2,...` line per 3 s segment. */
function embeddings(vectors: readonly (readonly number[])[]): string {
  return vectors.map((v, i) => `${3 * i}\t${3 * i + 3}\t${v.join(',')}\n`).join('');
}

/** `segments` two-value vectors whose first value is `id`, so a row can be traced to its file. */
function segmentsOf(id: number, segments: number): number[][] {
  return Array.from({ length: segments }, (_, s) => [id, s / 4]);
}

/** A CSV of `label,f1`: `counts[label]` rows per label, f1 numbering the rows from 0. */
function labelCsv(counts: Record<string, number>): string {
  let id = 0;
  const lines = ['label,f1'];
  for (const [label, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) lines.push(`${label},${id++}`);
  }
  return lines.join('\n') + '\n';
}

function rowY(data: DataSet, r: number): number[] {
  const k = data.labels.length;
  return Array.from(data.y.subarray(r * k, (r + 1) * k));
}

function rowX(data: DataSet, r: number): number[] {
  return Array.from(data.x.subarray(r * data.dim, (r + 1) * data.dim));
}

/** The exact bytes of a row's features and labels, to compare rows bit for bit. */
function rowBytes(data: DataSet, r: number): string {
  const k = data.labels.length;
  const x = Buffer.from(data.x.buffer, data.x.byteOffset + r * data.dim * 4, data.dim * 4);
  const y = Buffer.from(data.y.buffer, data.y.byteOffset + r * k * 4, k * 4);
  return `${x.toString('hex')}/${y.toString('hex')}`;
}

/** Rows per part for each key, e.g. each label combination: `{ key: [train, validation, test] }`. */
function countParts(data: DataSet, keyOf: (r: number) => string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (let r = 0; r < data.rows; r++) {
    const key = keyOf(r);
    out[key] ??= [0, 0, 0];
    out[key][data.parts[r]]++;
  }
  return out;
}

const byLabels = (data: DataSet) => (r: number) => rowY(data, r).join(',');

/** Source files by part, checking that no file has rows on two sides. */
function partOfEachFile(data: DataSet): Map<string, PartCode> {
  const parts = new Map<string, PartCode>();
  for (let r = 0; r < data.rows; r++) {
    const file = data.sources[r]?.file;
    expect(file, `row ${r} has a source file`).to.be.a('string');
    const part = data.parts[r] as PartCode;
    const seen = parts.get(file!);
    expect(seen ?? part, `${file} has rows on two sides`).to.equal(part);
    parts.set(file!, part);
  }
  return parts;
}

/** Files per part for each class folder (the part of the file name before `/`). */
function filesPerFolder(data: DataSet): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [file, part] of partOfEachFile(data)) {
    const folder = file.slice(0, file.indexOf('/'));
    out[folder] ??= [0, 0, 0];
    out[folder][part]++;
  }
  return out;
}

describe('dataset', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataset-test-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('validation split counts (case 13)', () => {
    it('should give 1/0, 1/1, 2/1 ... 8/3 for classes of 1..11 rows (splitParts)', () => {
      const classes = CASE_13.length;
      const y: number[] = [];
      CASE_13.forEach((_, c) => {
        for (let i = 0; i <= c; i++)
          y.push(...Array.from({ length: classes }, (_, j) => +(j === c)));
      });
      const rows = y.length / classes;

      for (const seed of [1, 2, 3]) {
        const parts = splitParts(
          Float32Array.from(y),
          classes,
          new Array(rows).fill(undefined),
          new Uint8Array(rows),
          { fraction: 0.2, random: new Random(seed) },
        );

        const counts = CASE_13.map(() => [0, 0, 0]);
        for (let r = 0; r < rows; r++) counts[y.indexOf(1, r * classes) - r * classes][parts[r]]++;
        expect(counts).to.deep.equal(CASE_13.map(([t, v]) => [t, v, 0]));
      }
    });

    it('should give the same counts through loadDataSet on a CSV', async () => {
      const counts: Record<string, number> = {};
      CASE_13.forEach((_, c) => (counts[`c${String(c + 1).padStart(2, '0')}`] = c + 1));
      write(dir, { 'sizes.csv': labelCsv(counts) });

      const data = await loadDataSet(join(dir, 'sizes.csv'), {
        labelColumn: 'label',
        validationSplit: 0.2,
      });

      expect(data.labels).to.deep.equal(Object.keys(counts));
      const got = countParts(data, (r) => data.labels[rowY(data, r).indexOf(1)]);
      expect(Object.keys(counts).map((label) => got[label])).to.deep.equal(
        CASE_13.map(([t, v]) => [t, v, 0]),
      );
    });
  });

  describe('split grouped by source file', () => {
    it('should keep all segments of a file on one side and count files, per class', async () => {
      // A: 5 files of 3, 1, 4, 2, 5 segments; B: 3 files of 2; noise: 2 files of 4.
      const files: Record<string, string> = {};
      [3, 1, 4, 2, 5].forEach((n, i) => (files[`A/a${i}.txt`] = embeddings(segmentsOf(i, n))));
      [2, 2, 2].forEach((n, i) => (files[`B/b${i}.txt`] = embeddings(segmentsOf(10 + i, n))));
      [4, 4].forEach((n, i) => (files[`noise/n${i}.txt`] = embeddings(segmentsOf(20 + i, n))));
      write(dir, files);

      for (const seed of [1, 2, 3, 4, 5]) {
        const data = await loadDataSet(dir, { seed });

        expect(data.rows).to.equal(15 + 6 + 8);
        // Units are files: A 5 -> max(1, trunc(4.0)) = 4 / 1; B 3 -> trunc(2.4) = 2 / 1;
        // noise 2 -> trunc(1.6) = 1 / 1.
        expect(filesPerFolder(data)).to.deep.equal({
          A: [4, 1, 0],
          B: [2, 1, 0],
          noise: [1, 1, 0],
        });
      }
    });

    it('should group the rows of a table by its file column', async () => {
      // 4 recordings of 3 rows each, all class A, plus 4 noise rows without a recording in common.
      const lines = ['file,start,end,label,f1'];
      for (let f = 0; f < 4; f++) {
        for (let s = 0; s < 3; s++) lines.push(`rec${f}.wav,${3 * s},${3 * s + 3},A,${f}.${s}`);
      }
      for (let n = 0; n < 4; n++) lines.push(`noise${n}.wav,0,3,noise,${10 + n}`);
      write(dir, { 'table.csv': lines.join('\n') + '\n' });

      const data = await loadDataSet(join(dir, 'table.csv'), {
        labelColumn: 'label',
        fileColumn: 'file',
        startColumn: 'start',
        endColumn: 'end',
      });

      expect(data.sources[1]).to.deep.equal({ file: 'rec0.wav', start: 3, end: 6 });
      // 4 recordings of A -> trunc(3.2) = 3 / 1 recordings = 9 / 3 rows; noise 4 -> 3 / 1.
      const files = partOfEachFile(data);
      expect(files.size).to.equal(8);
      expect(countParts(data, byLabels(data))).to.deep.equal({
        '1': [9, 3, 0],
        '0': [3, 1, 0],
      });
    });
  });

  describe('split rules for negatives, non-events and label combinations', () => {
    it('should keep -1 rows in train and split non-event rows by the same rule', async () => {
      const files: Record<string, string> = {};
      for (let i = 0; i < 5; i++) files[`X/x${i}.txt`] = embeddings(segmentsOf(i, 2));
      for (let i = 0; i < 4; i++) files[`-X/m${i}.txt`] = embeddings(segmentsOf(10 + i, 1));
      for (let i = 0; i < 5; i++) files[`noise/n${i}.txt`] = embeddings(segmentsOf(20 + i, 1));
      write(dir, files);

      for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
        const data = await loadDataSet(dir, { seed });

        expect(data.labels).to.deep.equal(['X']);
        // X: 5 files -> 4 / 1 (8 / 2 rows); noise: 5 files -> 4 / 1; -X: all 4 in train.
        expect(filesPerFolder(data)).to.deep.equal({
          X: [4, 1, 0],
          '-X': [4, 0, 0],
          noise: [4, 1, 0],
        });
        expect(countParts(data, byLabels(data))).to.deep.equal({
          '1': [8, 2, 0],
          '-1': [4, 0, 0],
          '0': [4, 1, 0],
        });
      }
    });

    it('should split multi-label rows per label combination', async () => {
      const files: Record<string, string> = {};
      for (let i = 0; i < 5; i++) files[`A/a${i}.txt`] = embeddings(segmentsOf(i, 1));
      for (let i = 0; i < 5; i++) files[`B/b${i}.txt`] = embeddings(segmentsOf(10 + i, 1));
      for (let i = 0; i < 3; i++) files[`A, B/ab${i}.txt`] = embeddings(segmentsOf(20 + i, 1));
      write(dir, files);

      const data = await loadDataSet(dir, { seed: 3 });

      expect(data.labels).to.deep.equal(['A', 'B']);
      // Per combination: A only 5 -> 4 / 1, B only 5 -> 4 / 1, A+B 3 -> trunc(2.4) = 2 / 1.
      // (Counted per class instead, A would hold 8 rows -> 6 / 2.)
      expect(countParts(data, byLabels(data))).to.deep.equal({
        '1,0': [4, 1, 0],
        '0,1': [4, 1, 0],
        '1,1': [2, 1, 0],
      });
    });

    it('should repeat a split with the same seed and change it with another', async () => {
      write(dir, { 'two.csv': labelCsv({ A: 40, B: 40 }) });
      const load = (seed: number) =>
        loadDataSet(join(dir, 'two.csv'), { labelColumn: 'label', seed });

      const first = await load(7);
      const again = await load(7);
      const other = await load(8);

      expect(Array.from(again.parts)).to.deep.equal(Array.from(first.parts));
      expect(Array.from(other.parts)).not.to.deep.equal(Array.from(first.parts));
      // Either way 40 rows per class -> trunc(32.0) = 32 / 8.
      for (const data of [first, other]) {
        expect(countParts(data, byLabels(data))).to.deep.equal({
          '1,0': [32, 8, 0],
          '0,1': [32, 8, 0],
        });
      }
    });
  });

  describe('validation rows untouched by augmentation (case 18)', () => {
    it('should keep exactly 2 + 1 + 0 original validation rows through every stage', async () => {
      const lines = ['label,f1,f2'];
      const add = (label: string, n: number, base: number) => {
        for (let i = 0; i < n; i++) lines.push(`${label},${base + i * 0.1},${0.3 - i * 0.07}`);
      };
      add('A', 10, 1);
      add('B', 5, 5);
      add('C', 1, 9);
      write(dir, { 'case18.csv': lines.join('\n') + '\n' });
      const seed = 11;

      const loaded = await loadDataSet(join(dir, 'case18.csv'), {
        labelColumn: 'label',
        validationSplit: 0.2,
        seed,
      });
      const original = Array.from(
        { length: loaded.rows },
        (_, r) => [rowBytes(loaded, r), loaded.parts[r]] as const,
      );
      const random = new Random(seed);
      const upsampled = await upsample(loaded, {
        ratio: 1,
        mode: 'smote',
        random: random.derive('upsample'),
      });
      const mixed = mixup(upsampled, { random: random.derive('mixup') });
      const smoothed = smoothLabels(mixed);

      // Split: A 10 -> 8 / 2, B 5 -> 4 / 1, C 1 -> 1 / 0.
      expect(countParts(loaded, byLabels(loaded))).to.deep.equal({
        '1,0,0': [8, 2, 0],
        '0,1,0': [4, 1, 0],
        '0,0,1': [1, 0, 0],
      });
      // Upsampling to trunc(8 * 1) = 8 rows per class adds 4 for B and 7 for C: 16 + 11 rows.
      expect(smoothed.rows).to.equal(27);
      expect(Array.from(smoothed.synthetic).filter((s) => s === 1)).to.have.length(11);
      // Smoothing with 3 classes made the training ones 0.9, so the stages did run.
      const trained = Array.from(smoothed.y).filter(
        (_, i) => smoothed.parts[Math.trunc(i / 3)] === Part.train,
      );
      expect(trained).to.include(Math.fround(0.9));

      const validation = Array.from({ length: smoothed.rows }, (_, r) => r).filter(
        (r) => smoothed.parts[r] === Part.validation,
      );
      const labelsOf = validation.map((r) => rowY(smoothed, r).join(','));
      expect(labelsOf.sort()).to.deep.equal(['0,1,0', '1,0,0', '1,0,0']);
      for (const r of validation) {
        expect(smoothed.synthetic[r]).to.equal(0);
        expect(rowY(smoothed, r).every((v) => v === 0 || v === 1)).to.equal(true);
      }
      const before = original.filter(([, part]) => part === Part.validation).map(([b]) => b);
      expect(validation.map((r) => rowBytes(smoothed, r)).sort()).to.deep.equal(before.sort());
    });
  });

  describe('training folder conventions', () => {
    it('should read a linked class folder as a class folder', async () => {
      const elsewhere = join(dir, 'elsewhere', 'Turdus');
      write(dir, {
        'train/Sitta/s.txt': embeddings([[1, 0.5]]),
        'train/Noise/n.txt': embeddings([[2, 0.5]]),
        'elsewhere/Turdus/t.txt': embeddings([[3, 0.5]]),
      });
      symlinkSync(elsewhere, join(dir, 'train', 'Turdus'), 'dir');
      const data = await loadDataSet(join(dir, 'train'), { validationSplit: 0 });
      expect(data.labels).to.deep.equal(['Sitta', 'Turdus']);
      expect(rowX(data, 2)).to.deep.equal([3, 0.5]);
    });

    it('should refuse a label with a line break, which labels.txt could not hold', async () => {
      const csv = join(dir, 'newline.csv');
      writeFileSync(csv, 'label,f1\n"Turdus merula\nmale",1\nSitta,2\n');
      let error: Error | undefined;
      await loadDataSet(csv, { labelColumn: 'label' }).catch((e: Error) => (error = e));
      expect(error?.message).to.include(
        `${csv}: label "Turdus merula\\nmale" contains a line break`,
      );
    });

    it('should read labels from folder names, negatives, non-events and skip hidden entries', async () => {
      write(dir, {
        'Sitta/s.txt': embeddings([[1, 0.5]]),
        'Sitta/.cache.txt': embeddings([[99, 99, 99]]),
        'Sitta/notes.md': 'not embeddings',
        'Corvus,  Anas /ca.txt': embeddings([[2, 0.5]]),
        'Corvus/c.txt': embeddings([[3, 0.5]]),
        '-Sitta/m.txt': embeddings([[4, 0.5]]),
        'Noise/n.txt': embeddings([[5, 0.5]]),
        'background/b.txt': embeddings([[6, 0.5]]),
        'OTHER/o.txt': embeddings([[7, 0.5]]),
        'silence/q.txt': embeddings([[8, 0.5]]),
        '.hidden/h.txt': embeddings([[9, 0.5]]),
        '.DS_Store': '',
      });

      const data = await loadDataSet(dir, { validationSplit: 0 });

      // Code-unit order: 'A' < 'C' < 'S'.
      expect(data.labels).to.deep.equal(['Anas', 'Corvus', 'Sitta']);
      expect(data.dim).to.equal(2);
      const byId: Record<number, number[]> = {};
      for (let r = 0; r < data.rows; r++) byId[rowX(data, r)[0]] = rowY(data, r);
      expect(byId).to.deep.equal({
        1: [0, 0, 1],
        2: [1, 1, 0],
        3: [0, 1, 0],
        4: [0, 0, -1],
        5: [0, 0, 0],
        6: [0, 0, 0],
        7: [0, 0, 0],
        8: [0, 0, 0],
      });
      expect(data.sources.map((s) => s?.file).sort()).to.deep.equal([
        '-Sitta/m.txt',
        'Corvus,  Anas /ca.txt',
        'Corvus/c.txt',
        'Noise/n.txt',
        'OTHER/o.txt',
        'Sitta/s.txt',
        'background/b.txt',
        'silence/q.txt',
      ]);
    });

    it('should refuse -X without a folder X', async () => {
      write(dir, {
        'Y/y.txt': embeddings([[1, 0]]),
        'noise/n.txt': embeddings([[2, 0]]),
        '-X/x.txt': embeddings([[3, 0]]),
      });

      const err = await refusal(loadDataSet(dir));

      expect(err.message).to.include('"-X"').and.include('no positive "X"');
    });

    it('should say binary training needs a non-event folder (case 5)', async () => {
      write(dir, { 'Turdus merula_Eurasian Blackbird/a.txt': embeddings([[1, 0]]) });

      const err = await refusal(loadDataSet(dir));

      expect(err.message).to.match(/binary training needs a non-event folder/);
      for (const name of ['noise', 'background', 'other', 'silence']) {
        expect(err.message).to.include(name);
      }
    });
  });

  describe('a real BirdNET-Analyzer embeddings file', () => {
    it('should read 40 rows of 1328 values with their times', async function (this: Mocha.Context) {
      if (!existsSync(REAL_EMBEDDINGS)) {
        const reason = `${REAL_EMBEDDINGS} is missing (the shared data folder beside the checkout)`;
        if (process.env.CI) throw new Error(`${reason}; CI must have it`);
        process.stdout.write(`skipped: ${reason}\n`);
        this.skip();
      }
      const lines = readFileSync(REAL_EMBEDDINGS, 'utf-8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      const [lastStart, lastEnd] = lines[lines.length - 1].split('\t').map(Number);
      const firstValue = Number(lines[0].split('\t')[2].split(',')[0]);

      const text = await readEmbeddingsText(REAL_EMBEDDINGS);

      expect(text.dim).to.equal(1328);
      expect(text.sources).to.have.length(40);
      expect(text.x).to.have.length(40 * 1328);
      expect(text.sources[0]).to.deep.equal({ file: REAL_EMBEDDINGS, start: 0, end: 3 });
      // 40 segments of 3 s: the last one runs 117..120 s, as the file's last line says.
      expect([lastStart, lastEnd]).to.deep.equal([117, 120]);
      expect(text.sources[39]).to.include({ start: lastStart, end: lastEnd });
      expect(text.x[0]).to.equal(Math.fround(firstValue));
      expect(text.x.every(Number.isFinite)).to.equal(true);
    });

    it('should make each row without a recording a unit of its own', async () => {
      // A and B: 10 rows each, 8 of them with an empty file cell, 2 from one recording each.
      const lines = ['file,label,f1'];
      for (const label of ['A', 'B']) {
        for (let r = 0; r < 10; r++) lines.push(`${r < 2 ? `${label}${r}.wav` : ''},${label},${r}`);
      }
      write(dir, { 'gaps.csv': lines.join('\n') + '\n' });

      const data = await loadDataSet(join(dir, 'gaps.csv'), {
        labelColumn: 'label',
        fileColumn: 'file',
      });

      expect(data.sources.filter((s) => s === undefined)).to.have.length(16);
      // 10 units per class -> trunc(10 * 0.8) = 8 train / 2 validation rows, as without files.
      expect(countParts(data, byLabels(data))).to.deep.equal({
        '1,0': [8, 2, 0],
        '0,1': [8, 2, 0],
      });
    });
  });

  describe('errors on bad input', () => {
    it('should name the line of a ragged CSV row', async () => {
      write(dir, { 'ragged.csv': 'label,f1,f2\nA,1,2\nB,3\n' });

      const err = await refusal(loadDataSet(join(dir, 'ragged.csv'), { labelColumn: 'label' }));

      expect(err.message).to.include('ragged.csv').and.include('line 3');
      expect(err.message).to.include('expected 3 fields').and.include('found 2');
    });

    it('should name the line and column of a non-numeric and of a NaN cell', async () => {
      write(dir, {
        'word.csv': 'label,f1,f2\nA,1,2\nB,x,2\n',
        'nan.csv': 'label,f1,f2\nA,1,2\nB,3,4\nC,5,NaN\n',
      });

      const word = await refusal(loadDataSet(join(dir, 'word.csv'), { labelColumn: 'label' }));
      const nan = await refusal(loadDataSet(join(dir, 'nan.csv'), { labelColumn: 'label' }));

      expect(word.message).to.include('word.csv').and.include('line 3, column "f1"');
      expect(word.message).to.include('expected a finite number').and.include('"x"');
      expect(nan.message).to.include('nan.csv').and.include('line 4, column "f2"');
      expect(nan.message).to.include('"NaN"');
    });

    it('should name a missing label column and list the header', async () => {
      write(dir, { 'frogs.csv': 'Species,MFCC_1,MFCC_2\nA,1,2\n' });

      const err = await refusal(loadDataSet(join(dir, 'frogs.csv'), { labelColumn: 'label' }));

      expect(err.message).to.include('frogs.csv').and.include('"label"');
      expect(err.message).to.include('Species, MFCC_1, MFCC_2');
    });

    it('should name both files and lengths when embeddings differ in length', async () => {
      write(dir, {
        'A/old.txt': embeddings([[1, 2, 3]]),
        'B/new.txt': embeddings([[1, 2]]),
        'noise/n.txt': embeddings([[0, 0, 0]]),
      });

      const err = await refusal(loadDataSet(dir));

      expect(err.message).to.include('A/old.txt').and.include('has 3');
      expect(err.message).to.include(join('B', 'new.txt')).and.include('have 2 values');
    });

    it('should name an empty class folder', async () => {
      write(dir, { 'A/a.txt': embeddings([[1, 2]]), 'noise/n.txt': embeddings([[0, 0]]) });
      mkdirSync(join(dir, 'Empty class'));

      const err = await refusal(loadDataSet(dir));

      expect(err.message).to.include('"Empty class"').and.include('holds no embeddings');
    });

    it('should refuse an unknown data format', async () => {
      write(dir, { 'data.json': '{}' });

      const err = await refusal(loadDataSet(join(dir, 'data.json')));

      expect(err.message).to.include('data.json').and.include('unknown data format');
    });
  });

  describe('tables as spreadsheets write them (case 28)', () => {
    it('should read a byte-order mark and CRLF line ends', async () => {
      write(dir, { 'excel.csv': '\uFEFFlabel,f1\r\nA,0.5\r\nB,0.7\r\n' });

      const raw = await readTable(join(dir, 'excel.csv'), { labelColumn: 'label' });
      const data = await loadDataSet(join(dir, 'excel.csv'), { labelColumn: 'label' });

      expect(raw.features).to.deep.equal(['f1']);
      expect(raw.labels.map((l) => l.positives)).to.deep.equal([['A'], ['B']]);
      expect(Array.from(raw.x)).to.deep.equal([0.5, Math.fround(0.7)]);
      expect(data.labels).to.deep.equal(['A', 'B']);
      expect([rowY(data, 0), rowY(data, 1)]).to.deep.equal([
        [1, 0],
        [0, 1],
      ]);
    });

    it('should refuse a decimal comma, naming line 2', async () => {
      write(dir, { 'comma.csv': 'label;f1\nA;0,75\n' });

      const err = await refusal(loadDataSet(join(dir, 'comma.csv'), { labelColumn: 'label' }));

      expect(err.message).to.include('comma.csv').and.include('line 2');
      expect(err.message).to.include('"0,75"');
    });

    it('should refuse a table that is not UTF-8, naming the line, rather than merge labels', async () => {
      // "Café" and "Cafè" in Windows-1252: bytes e9 and e8, which are no UTF-8.
      const latin1 = Buffer.from('label,f1\nCaf\xe9,0.1\nCaf\xe8,0.3\nNoise,0.5\n', 'latin1');
      write(dir, { 'latin1.csv': latin1 });

      const err = await refusal(loadDataSet(join(dir, 'latin1.csv'), { labelColumn: 'label' }));

      expect(err.message).to.include('latin1.csv').and.include('line 2');
      expect(err.message).to.include('not UTF-8');
    });

    it('should refuse header names that are empty or repeated, naming the column', async () => {
      write(dir, {
        'trailing.csv': 'label,f1,f2,\nA,1,2,\n',
        'index.csv': ',label,f1\n0,A,1\n',
        'twice.csv': 'label,f1,label\nA,1,x\n',
      });
      const load = (name: string) =>
        refusal(loadDataSet(join(dir, name), { labelColumn: 'label' }));

      const [trailing, index, twice] = await Promise.all(
        ['trailing.csv', 'index.csv', 'twice.csv'].map(load),
      );

      expect(trailing.message).to.include('line 1: column 4 has no name');
      expect(trailing.message).to.include('delimiter at the end');
      expect(index.message).to.include('line 1: column 1 has no name').and.include('index=False');
      expect(twice.message).to.include('two columns are named "label"');
    });

    it('should take the delimiter from the "sep=" line Excel writes first', async () => {
      write(dir, {
        'excel.csv': 'sep=;\r\nlabel;f1;f2\r\nA;1;2\r\nB;3;4\r\n',
        'excel-bad.csv': 'sep=;\nlabel;f1;f1\nA;1;2\n',
      });

      const data = await loadDataSet(join(dir, 'excel.csv'), {
        labelColumn: 'label',
        validationSplit: 0,
      });
      expect(data.embedding.features).to.deep.equal(['f1', 'f2']);
      expect(Array.from(data.x)).to.deep.equal([1, 2, 3, 4]);

      // The header is line 2 of such a file.
      const err = await refusal(loadDataSet(join(dir, 'excel-bad.csv'), { labelColumn: 'label' }));
      expect(err.message).to.include('excel-bad.csv: line 2: two columns are named "f1"');
    });

    it('should refuse a value beyond 32-bit floats, which would train on Infinity', async () => {
      write(dir, { 'huge.csv': 'label,f1\nA,3.4e38\nB,1e39\n' });

      const err = await refusal(loadDataSet(join(dir, 'huge.csv'), { labelColumn: 'label' }));

      expect(err.message).to.include('line 3, column "f1"').and.include('1e39');
    });

    it('should read a .tsv with tabs, commas inside a label cell meaning several labels', async () => {
      write(dir, { 'rows.tsv': 'label\tf1\tf2\nA, B\t0.25\t-1.5\nB\t1e-3\t2\nnoise\t0\t0\n' });

      const data = await loadDataSet(join(dir, 'rows.tsv'), {
        labelColumn: 'label',
        validationSplit: 0,
      });

      expect(data.labels).to.deep.equal(['A', 'B']);
      expect(data.dim).to.equal(2);
      expect(Array.from(data.x)).to.deep.equal([0.25, -1.5, Math.fround(0.001), 2, 0, 0]);
      expect(Array.from(data.y)).to.deep.equal([1, 1, 0, 1, 0, 0]);
    });
  });

  describe('a separate test set', () => {
    const train = labelCsv({ B: 5, A: 5, noise: 2 });

    it('should mark its rows test, never validation, in the training class order', async () => {
      write(dir, {
        'train.csv': train,
        'test.csv': 'label,f1\nB,101\nA,102\nnoise,103\nB,104\n',
      });

      const data = await loadDataSet(join(dir, 'train.csv'), {
        labelColumn: 'label',
        testData: join(dir, 'test.csv'),
      });

      expect(data.labels).to.deep.equal(['A', 'B']);
      expect(data.rows).to.equal(16);
      expect(Array.from(data.parts.subarray(12))).to.deep.equal([2, 2, 2, 2]);
      expect(Array.from(data.x.subarray(12))).to.deep.equal([101, 102, 103, 104]);
      expect(Array.from(data.y.subarray(24))).to.deep.equal([0, 1, 1, 0, 0, 0, 0, 1]);
      // Training rows alone are split: A 5 -> 4 / 1, B 5 -> 4 / 1, noise 2 -> 1 / 1.
      expect(countParts(data, byLabels(data))).to.deep.equal({
        '0,1': [4, 1, 2],
        '1,0': [4, 1, 1],
        '0,0': [1, 1, 1],
      });
    });

    it('should accept a test set that holds a single training class', async () => {
      write(dir, { 'train.csv': train, 'test.csv': 'label,f1\nB,101\nB,102\n' });

      const data = await loadDataSet(join(dir, 'train.csv'), {
        labelColumn: 'label',
        testData: join(dir, 'test.csv'),
      });

      expect(Array.from(data.parts.subarray(12))).to.deep.equal([2, 2]);
      expect(Array.from(data.y.subarray(24))).to.deep.equal([0, 1, 0, 1]);
    });

    it('should re-order the label columns of a .npz test set to the training classes', async () => {
      const want = JSON.parse(readFileSync(join(NPZ_FIXTURES, 'expected.json'), 'utf-8'))[
        'cache-2x.npz'
      ] as { labels: string[]; yTrain: number[]; yTest: number[] };
      // Training classes sorted: "Bewick's Wren" < "Junco ..." < "Poecile ...".
      const [junco, poecile, wren] = want.labels;
      const lines = ['label,' + Array.from({ length: 8 }, (_, i) => `f${i}`).join(',')];
      for (const label of [junco, poecile, wren, 'noise']) lines.push(`${label},1,2,3,4,5,6,7,8`);
      write(dir, { 'train.csv': lines.join('\n') + '\n' });

      const data = await loadDataSet(join(dir, 'train.csv'), {
        labelColumn: 'label',
        testData: join(NPZ_FIXTURES, 'cache-2x.npz'),
      });

      expect(data.labels).to.deep.equal([wren, junco, poecile]);
      // Cache columns (junco, poecile, wren) move to training columns (1, 2, 0).
      const cacheY = [...want.yTrain, ...want.yTest];
      const moved: number[] = [];
      for (let r = 0; r < cacheY.length / 3; r++) {
        const [j, p, w] = cacheY.slice(3 * r, 3 * r + 3);
        moved.push(w, j, p);
      }
      expect(data.rows).to.equal(4 + 16);
      expect(Array.from(data.y.subarray(4 * 3))).to.deep.equal(moved);
      expect(Array.from(data.parts.subarray(4)).every((p) => p === Part.test)).to.equal(true);
    });

    it('should match the columns of a test table to the training table by name', async () => {
      write(dir, {
        'train.csv': 'label,f1,f2,f3\nA,1,2,3\nA,4,5,6\nB,7,8,9\nB,10,11,12\n',
        'test.csv': 'f3,label,f1,f2\n30,A,10,20\n33,B,11,22\n',
        'short.csv': 'label,f1,f3,extra\nA,1,3,0\n',
      });

      const data = await loadDataSet(join(dir, 'train.csv'), {
        labelColumn: 'label',
        testData: join(dir, 'test.csv'),
      });
      expect(data.embedding.features).to.deep.equal(['f1', 'f2', 'f3']);
      // Test rows read as (f1, f2, f3) = (10, 20, 30) and (11, 22, 33).
      expect(Array.from(data.x.subarray(12))).to.deep.equal([10, 20, 30, 11, 22, 33]);

      const err = await refusal(
        loadDataSet(join(dir, 'train.csv'), {
          labelColumn: 'label',
          testData: join(dir, 'short.csv'),
        }),
      );
      expect(err.message).to.include('short.csv').and.include('lacks "f2"');
      expect(err.message).to.include('has "extra" besides');
    });

    it("should name the separator of a label that joins a model's classes", async () => {
      write(dir, { 'scored.csv': 'label,f1\nA,1\nA;B,2\n', 'odd.csv': 'label,f1\nA;Z,1\n' });
      const options = { labelColumn: 'label', classes: ['A', 'B'], validationSplit: 0 };

      const joined = await refusal(loadDataSet(join(dir, 'scored.csv'), options));
      expect(joined.message).to.include('label "A;B" is not a training class of the model (A, B)');
      expect(joined.message).to.include('set the label separator to ";"');
      // Z is no class at all: no separator would help.
      const unknown = await refusal(loadDataSet(join(dir, 'odd.csv'), options));
      expect(unknown.message).to.include('label "A;Z" is not a training class');
      expect(unknown.message).not.to.include('separator');
    });

    it('should refuse a test label that training does not know', async () => {
      write(dir, { 'train.csv': train, 'test.csv': 'label,f1\nA,101\nZ,102\n' });

      const err = await refusal(
        loadDataSet(join(dir, 'train.csv'), {
          labelColumn: 'label',
          testData: join(dir, 'test.csv'),
        }),
      );

      expect(err.message).to.include('test.csv').and.include('label "Z" is not a training class');
      expect(err.message).to.include('not a training class');
    });
  });

  describe('a BirdNET-Analyzer .npz cache', () => {
    it('should mark the cache test rows test and split its training rows', async () => {
      const want = JSON.parse(readFileSync(join(NPZ_FIXTURES, 'expected.json'), 'utf-8'))[
        'cache-2x.npz'
      ] as { labels: string[]; dim: number; xTest: number[]; yTrain: number[]; yTest: number[] };

      const data = await loadDataSet(join(NPZ_FIXTURES, 'cache-2x.npz'), { seed: 4 });

      expect(data.labels).to.deep.equal(want.labels);
      expect(data.dim).to.equal(want.dim);
      expect(data.rows).to.equal(12 + 4);
      expect(Array.from(data.y)).to.deep.equal([...want.yTrain, ...want.yTest]);
      expect(Array.from(data.x.subarray(12 * 8))).to.deep.equal(want.xTest.map(Math.fround));
      expect(Array.from(data.parts.subarray(12))).to.deep.equal([2, 2, 2, 2]);
      // Training rows per combination: junco 3 -> trunc(2.4) = 2 / 1, poecile 4 -> 3 / 1,
      // wren 4 -> 3 / 1, the one -1 row stays in train. Test: 3 junco, 1 wren.
      expect(countParts(data, byLabels(data))).to.deep.equal({
        '1,0,0': [2, 1, 3],
        '0,1,0': [3, 1, 0],
        '0,0,1': [3, 1, 1],
        '0,0,-1': [1, 0, 0],
      });
    });
  });
});
