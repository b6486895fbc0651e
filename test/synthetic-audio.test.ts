import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'fs';
import FFT from 'fft.js';
import { tmpdir } from 'os';
import { basename, dirname, join } from 'path';
import { DEFAULT_SIGNAL, readSignal } from '../src/audio/decode';
import { cropSegments } from '../src/audio/segments';
import { SPECTROGRAM_STATS_DIM, spectrogramStats } from '../src/audio/spectrogram-stats';
import {
  SYNTHETIC_CALL_TYPES,
  SyntheticCallKind,
  synthesizeRecording,
  writeSyntheticRecordings,
} from '../src/audio/synthetic';
import { DEMO_CLASSES } from '../src/demo';

const FOLDERS = [...DEMO_CLASSES, 'Noise'];
const CLIPS = 6;
const RATE = 16000;
const SECONDS = 6;

/** The 16-bit samples of a canonical 44-byte-header WAV file, as numbers in [-1, 1]. */
function wavSamples(bytes: Buffer): Float64Array {
  const count = bytes.readUInt32LE(40) / 2;
  return Float64Array.from({ length: count }, (_, i) => bytes.readInt16LE(44 + 2 * i) / 32767);
}

function argMax(values: ArrayLike<number>, from = 0): number {
  let best = from;
  for (let i = from; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function peak(samples: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < samples.length; i++) max = Math.max(max, Math.abs(samples[i]));
  return max;
}

function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let j = 0; j < a.length; j++) sum += (a[j] - b[j]) ** 2;
  return Math.sqrt(sum);
}

function centroid(vectors: readonly Float32Array[]): Float64Array {
  const c = new Float64Array(SPECTROGRAM_STATS_DIM);
  for (const v of vectors) for (let j = 0; j < c.length; j++) c[j] += v[j] / vectors.length;
  return c;
}

/** Power spectrum (Hann window) of the first 2^17 samples: `[bins]` and the Hz of one bin. */
function powerSpectrum(signal: Float32Array, rate: number) {
  const n = 2 ** 17;
  const fft = new FFT(n);
  const frame = Array.from(
    { length: n },
    (_, i) => (signal[i] ?? 0) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n)),
  );
  const out = fft.createComplexArray() as number[];
  fft.realTransform(out, frame);
  const power = Array.from({ length: n / 2 + 1 }, (_, k) => out[2 * k] ** 2 + out[2 * k + 1] ** 2);
  return { power, binHz: rate / n };
}

const roots: string[] = [];
function tempDir(name: string): string {
  const root = mkdtempSync(join(tmpdir(), 'synthetic '));
  roots.push(root);
  return join(root, name);
}

after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('synthesizeRecording', () => {
  const kinds: SyntheticCallKind[] = ['whistle', 'chirp', 'trill', 'two-note', 'noise'];

  it('should give seconds * rate samples in [-1, 1], the same for the same seed', () => {
    for (const kind of kinds) {
      const a = synthesizeRecording(kind, { seed: 7, seconds: 2.5, sampleRate: 22050 });
      const b = synthesizeRecording(kind, { seed: 7, seconds: 2.5, sampleRate: 22050 });
      const c = synthesizeRecording(kind, { seed: 8, seconds: 2.5, sampleRate: 22050 });
      expect(a, kind).to.be.instanceOf(Float32Array);
      expect(a.length, kind).to.equal(55125);
      expect(peak(a), kind).to.be.above(0).and.at.most(1);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer)), kind).to.equal(true);
      expect(Buffer.from(c.buffer).equals(Buffer.from(a.buffer)), kind).to.equal(false);
    }
  });

  it('should sing each call type at its design pitch, with only background above 7 kHz', () => {
    // Design pitch times the clip's +-5 %, the call's +-1 % and, for the whistle, the 1.5 %
    // vibrato; the two-note call peaks at either note, the chirp anywhere on its sweep.
    const spread = [0.95 * 0.99 * 0.985, 1.05 * 1.01 * 1.015];
    const expected: Record<Exclude<SyntheticCallKind, 'noise'>, [number, number][]> = {
      whistle: [[2800 * spread[0], 2800 * spread[1]]],
      chirp: [[3200 * spread[0], 6200 * spread[1]]],
      trill: [[4400 * spread[0], 4400 * spread[1]]],
      'two-note': [
        [2400 * spread[0], 2400 * spread[1]],
        [3600 * spread[0], 3600 * spread[1]],
      ],
    };
    for (const [kind, bands] of Object.entries(expected)) {
      for (const seed of [1, 2, 3]) {
        const signal = synthesizeRecording(kind as SyntheticCallKind, {
          seed,
          seconds: 2.8,
          sampleRate: 48000,
        });
        const { power, binHz } = powerSpectrum(signal, 48000);
        const strongest = argMax(power);
        const hz = strongest * binHz;
        const label = `${kind}, seed ${seed}: ${hz.toFixed(0)} Hz`;
        expect(
          bands.some(([lo, hi]) => hz >= lo && hz <= hi),
          label,
        ).to.equal(true);

        // Above 7 kHz only background may sound: no stronger there than in 1 to 2 kHz, where no
        // call type sings, give or take the 3 dB by which the larger of two noise bands peaks.
        const above = power[argMax(power, Math.ceil(7000 / binHz))];
        const floor =
          power[argMax(power.slice(0, Math.floor(2000 / binHz)), Math.ceil(1000 / binHz))];
        expect(10 * Math.log10(above / floor), label).to.be.below(3);
      }
    }
  });

  it('should refuse a rate too low for its calls and an unknown kind, naming the field', () => {
    expect(() =>
      synthesizeRecording('whistle', { seed: 1, seconds: 1, sampleRate: 8000 }),
    ).to.throw(/sampleRate: .*at least 16000, got 8000/);
    expect(() =>
      synthesizeRecording('hoot' as SyntheticCallKind, { seed: 1, seconds: 1, sampleRate: 16000 }),
    ).to.throw(/kind: expected one of whistle, chirp, trill, two-note, noise, got "hoot"/);
  });
});

describe('writeSyntheticRecordings', () => {
  let dir: string;
  let paths: string[];
  /** Per file, its class folder and the embeddings of its 3 s segments. */
  const files: { path: string; label: string; vectors: Float32Array[] }[] = [];

  before(async () => {
    dir = tempDir('set');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'stale.txt'), 'left from an earlier run');
    paths = await writeSyntheticRecordings(dir);

    const extractor = spectrogramStats();
    for (const path of paths) {
      const signal = await readSignal(path, DEFAULT_SIGNAL);
      const segments = cropSegments(signal, 48000, { mode: 'segments', overlap: 0 });
      const { x, dim } = await extractor.embed(segments.map((s) => s.samples));
      const vectors = segments.map((_, i) => x.slice(i * dim, (i + 1) * dim));
      files.push({ path, label: basename(dirname(path)), vectors });
    }
  });

  it('should name a call type for every class folder', () => {
    expect(Object.keys(SYNTHETIC_CALL_TYPES)).to.deep.equal(FOLDERS);
    const kinds = Object.values(SYNTHETIC_CALL_TYPES).map((t) => t.kind);
    expect(new Set(kinds).size).to.equal(FOLDERS.length);
  });

  it('should write one folder per demo class plus Noise, clip01.wav to clip06.wav in each', () => {
    expect(readdirSync(dir).sort()).to.deep.equal([...FOLDERS].sort());
    const names = Array.from({ length: CLIPS }, (_, k) => `clip0${k + 1}.wav`);
    for (const folder of FOLDERS)
      expect(readdirSync(join(dir, folder)).sort()).to.deep.equal(names);
    expect(paths).to.deep.equal(FOLDERS.flatMap((f) => names.map((n) => join(dir, f, n))));
  });

  it('should write 16-bit PCM mono WAV at 16 kHz, 6 s long, that decode to two segments', () => {
    const dataBytes = SECONDS * RATE * 2;
    for (const path of paths) {
      const bytes = readFileSync(path);
      expect(bytes.toString('ascii', 0, 4), path).to.equal('RIFF');
      expect(bytes.toString('ascii', 8, 16), path).to.equal('WAVEfmt ');
      expect(bytes.readUInt16LE(20), 'PCM').to.equal(1);
      expect(bytes.readUInt16LE(22), 'channels').to.equal(1);
      expect(bytes.readUInt32LE(24), 'sample rate').to.equal(RATE);
      expect(bytes.readUInt32LE(28), 'byte rate').to.equal(RATE * 2);
      expect(bytes.readUInt16LE(32), 'block align').to.equal(2);
      expect(bytes.readUInt16LE(34), 'bits').to.equal(16);
      expect(bytes.toString('ascii', 36, 40), path).to.equal('data');
      expect(bytes.readUInt32LE(40), 'data bytes').to.equal(dataBytes);
      expect(bytes.length, path).to.equal(44 + dataBytes);
    }
    for (const f of files) expect(f.vectors, f.path).to.have.length(2);
  });

  it('should keep samples within [-1, 1], with call peaks of -20 to -6 dBFS', () => {
    for (const path of paths) {
      const level = 20 * Math.log10(peak(wavSamples(readFileSync(path))));
      expect(level, path).to.be.at.most(0);
      // The background, at most -42 dBFS RMS, moves a call's peak by well under 1 dB.
      if (basename(dirname(path)) !== 'Noise') {
        expect(level, path).to.be.within(-21, -5);
      }
    }
  });

  it('should write the same bytes for the same seed and other bytes for another seed', async () => {
    const again = await writeSyntheticRecordings(tempDir('again'), { seed: 1 });
    const other = await writeSyntheticRecordings(tempDir('other'), { seed: 2 });
    paths.forEach((path, i) => {
      const bytes = readFileSync(path);
      expect(readFileSync(again[i]).equals(bytes), again[i]).to.equal(true);
      expect(readFileSync(other[i]).equals(bytes), other[i]).to.equal(false);
    });
  });

  it('should write the number of clips, rate and length asked for', async () => {
    const small = await writeSyntheticRecordings(tempDir('small'), {
      clipsPerClass: 2,
      sampleRate: 22050,
      seconds: 1.5,
    });
    expect(small).to.have.length(2 * FOLDERS.length);
    const bytes = readFileSync(small[0]);
    expect(bytes.readUInt32LE(24)).to.equal(22050);
    expect(bytes.readUInt32LE(40)).to.equal(Math.round(1.5 * 22050) * 2);
  });

  it('should give classes a nearest centroid tells apart, leaving each file out', () => {
    let right = 0;
    let total = 0;
    files.forEach((file, i) => {
      const centroids = FOLDERS.map((label) =>
        centroid(files.filter((f, j) => j !== i && f.label === label).flatMap((f) => f.vectors)),
      );
      for (const v of file.vectors) {
        const d = centroids.map((c) => distance(c, v));
        if (FOLDERS[d.indexOf(Math.min(...d))] === file.label) right++;
        total++;
      }
    });
    expect(total).to.equal(FOLDERS.length * CLIPS * 2);
    expect(right / total).to.be.at.least(0.9);
  });

  it('should give clips of one class embeddings that differ', () => {
    const within: number[] = [];
    for (const label of FOLDERS) {
      const means = files.filter((f) => f.label === label).map((f) => centroid(f.vectors));
      for (let a = 0; a < means.length; a++) {
        for (let b = a + 1; b < means.length; b++) within.push(distance(means[a], means[b]));
      }
    }
    const centres = FOLDERS.map((label) =>
      centroid(files.filter((f) => f.label === label).flatMap((f) => f.vectors)),
    );
    const between: number[] = [];
    for (let a = 0; a < centres.length; a++) {
      for (let b = a + 1; b < centres.length; b++) between.push(distance(centres[a], centres[b]));
    }

    expect(Math.min(...within)).to.be.above(0.1);
    // Clips spread by a fair share of the distance between classes, so the task is not trivial.
    const meanWithin = within.reduce((s, d) => s + d, 0) / within.length;
    expect(meanWithin / Math.min(...between)).to.be.above(0.2);
  });
});
