import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { lastValueFrom, of, toArray } from 'rxjs';
import { WaveFile } from 'wavefile';
import { EmbeddingCache } from '../src/audio/cache';
import { readSignal } from '../src/audio/decode';
import { Extractor } from '../src/audio/extractor';
import { DEFAULT_AUDIO, audioSettingsId } from '../src/audio/recordings';
import { Segment, cropSegments, loudest } from '../src/audio/segments';
import { spectrogramStats } from '../src/audio/spectrogram-stats';
import { Part, rowsOf } from '../src/dataset/dataset';
import { LoadOptions, loadDataSet } from '../src/dataset/load';
import { RecordingsReport, readRecordingsFolder } from '../src/dataset/recordings';
import { Random } from '../src/random';
import { load, upsample } from '../src/streams';
import { refusal } from './helpers';

/** A mono 16-bit WAV of a sine at `hz`, `seconds` long, at `rate`. */
function sineWav(seconds: number, hz: number, rate = 16000, amplitude = 0.5): Buffer {
  const n = Math.round(seconds * rate);
  const samples = Int16Array.from({ length: n }, (_, i) =>
    Math.round(32767 * amplitude * Math.sin((2 * Math.PI * hz * i) / rate)),
  );
  const wav = new WaveFile();
  wav.fromScratch(1, rate, '16', samples);
  return Buffer.from(wav.toBuffer());
}

/** Writes `files` (relative path -> bytes) below a new temporary folder and returns it. */
function folder(files: Record<string, Buffer>): string {
  const root = mkdtempSync(join(tmpdir(), 'recordings '));
  for (const [relative, bytes] of Object.entries(files)) {
    mkdirSync(join(root, relative, '..'), { recursive: true });
    writeFileSync(join(root, relative), bytes);
  }
  return root;
}

/** A load of recordings with its report and warnings, the cache in its own folder. */
async function loadRecordings(root: string, options: LoadOptions = {}) {
  const reports: RecordingsReport[] = [];
  const warnings: string[] = [];
  const data = await loadDataSet(root, {
    cacheDir: join(root, '..', `${root.split('/').pop()} cache`),
    warn: (line) => warnings.push(line),
    onRecordings: (r) => reports.push(r),
    ...options,
  });
  return { data, report: reports[0], warnings };
}

/** The built-in extractor, counting the segments it is asked to embed. */
function countingExtractor(): Extractor & { calls: number } {
  const inner = spectrogramStats();
  const counting = {
    ...inner,
    calls: 0,
    embed(segments: readonly Float32Array[]) {
      counting.calls++;
      return inner.embed(segments);
    },
  };
  return counting;
}

const roots: string[] = [];
function tracked(root: string): string {
  roots.push(root, join(root, '..', `${root.split('/').pop()} cache`));
  return root;
}

after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

describe('crop modes', () => {
  const rate = 10;
  /** A clip of `seconds` at 10 Hz whose sample i holds i + 1, so segments show where they lie. */
  const clip = (seconds: number) => Float32Array.from({ length: seconds * rate }, (_, i) => i + 1);
  const spans = (segments: Segment[]) => segments.map((s) => [s.start, s.end]);

  it('should take the middle 3 s in mode center, and pad a short clip', () => {
    const [middle] = cropSegments(clip(7), rate, { mode: 'center', overlap: 0 });
    // (70 - 30) / 2 = 20 samples in: samples 21..50.
    expect(middle.samples[0]).to.equal(21);
    expect(middle.samples[29]).to.equal(50);
    const [padded] = cropSegments(clip(2), rate, { mode: 'center', overlap: 0 });
    expect(padded.samples).to.have.length(30);
    expect(Array.from(padded.samples.subarray(18))).to.deep.equal([
      19, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expect([padded.start, padded.end]).to.deep.equal([0, 2]);
  });

  it('should give nothing for a clip under 1 s in mode first (case 3)', () => {
    expect(cropSegments(clip(0.9), rate, { mode: 'first', overlap: 0 })).to.deep.equal([]);
    expect(spans(cropSegments(clip(1), rate, { mode: 'first', overlap: 0 }))).to.deep.equal([
      [0, 1],
    ]);
  });

  it('should step by 3 s minus the overlap and keep a tail of at least 1 s in mode segments', () => {
    // 10 s, no overlap: 0-3, 3-6, 6-9, then 9-10 (1 s of real audio, kept).
    expect(spans(cropSegments(clip(10), rate, { mode: 'segments', overlap: 0 }))).to.deep.equal([
      [0, 3],
      [3, 6],
      [6, 9],
      [9, 10],
    ]);
    // 9.5 s: the tail 9-9.5 has 0.5 s of real audio and is dropped.
    const short = cropSegments(clip(9.5), rate, { mode: 'segments', overlap: 0 });
    expect(spans(short)).to.deep.equal([
      [0, 3],
      [3, 6],
      [6, 9],
    ]);
    // Overlap 1 s: step 2 s; 7 s gives 0-3, 2-5, 4-7.
    expect(spans(cropSegments(clip(7), rate, { mode: 'segments', overlap: 1 }))).to.deep.equal([
      [0, 3],
      [2, 5],
      [4, 7],
    ]);
  });

  it('should keep a clip of at most 3 s whole in mode smart, and the loudest peaks of a longer one', () => {
    expect(spans(cropSegments(clip(3), rate, { mode: 'smart', overlap: 0 }))).to.deep.equal([
      [0, 3],
    ]);
    const ofLevels = (levels: number[]) =>
      levels.map((l, i) => ({
        samples: new Float32Array(30).fill(l),
        start: 3 * i,
        end: 3 * i + 3,
      }));
    // Segments of constant level: score = 0.7 * RMS + 0.3 * peak = the level. Levels
    // 1 2 9 2 1 1 8 1 1, smoothed over three (zero beyond the ends): 1, 4, 4.333, 4, 1.333,
    // 3.333, 3.333, 3.333, 0.667; mean 2.815. Peaks above it: 2, and the flat run 5-7 at its
    // middle, 6. Two peaks: both kept, highest first.
    expect(spans(loudest(ofLevels([1, 2, 9, 2, 1, 1, 8, 1, 1]), rate))).to.deep.equal([
      [6, 9],
      [18, 21],
    ]);
    // Levels 1 1 1 5 1 1 1 1 1: smoothed 0.667, 1, 2.333, 2.333, 2.333, 1, 1, 1, 0.667; one
    // (flat) peak, so the max(3, trunc(9 / 3)) = 3 best smoothed scores, in time order: 2, 3, 4.
    expect(spans(loudest(ofLevels([1, 1, 1, 5, 1, 1, 1, 1, 1]), rate))).to.deep.equal([
      [6, 9],
      [9, 12],
      [12, 15],
    ]);
    // Levels 1 9 1 1 1 9 1 1 1: smoothed 3.333, 3.667, 3.667, 1, 3.667, 3.667, 3.667, 1, 0.667
    // (mean 2.7): two flat peaks, 1-2 and 4-6, each taken at its middle (1 and 5), both kept,
    // highest first and the earlier first on a tie.
    expect(spans(loudest(ofLevels([1, 9, 1, 1, 1, 9, 1, 1, 1]), rate))).to.deep.equal([
      [3, 6],
      [15, 18],
    ]);
  });

  it('should refuse an overlap of 3 s or more before any file is read (case 9)', async () => {
    const missing = join(tmpdir(), 'no such training folder');
    for (const overlap of [3, 4.5]) {
      const error = await refusal(loadDataSet(missing, { audio: { mode: 'segments', overlap } }));
      expect(error.message).to.match(/overlap: expected seconds in \[0, 3\).*got/);
    }
  });
});

describe('recordings', () => {
  it('should decode a 16 kHz stereo file to 48 kHz mono', async () => {
    const rate = 16000;
    const left = Int16Array.from({ length: rate }, (_, i) =>
      Math.round(16000 * Math.sin((2 * Math.PI * 440 * i) / rate)),
    );
    const wav = new WaveFile();
    wav.fromScratch(2, rate, '16', [left, left.map((v) => -v)]);
    const root = tracked(folder({ 'A/stereo.wav': Buffer.from(wav.toBuffer()) }));
    const signal = await readSignal(join(root, 'A', 'stereo.wav'), {
      sampleRate: 48000,
      speed: 1,
      fmin: 0,
      fmax: 15000,
    });
    // One second at 48 kHz; the channels cancel when mixed: (x + -x) / 2 = 0.
    expect(signal.length).to.be.within(47990, 48010);
    expect(Math.max(...signal.map(Math.abs))).to.be.below(1e-3);
  });

  it('should read speed 0.5 as a file of half the rate: twice as long', async () => {
    const root = tracked(folder({ 'A/a.wav': sineWav(1, 440) }));
    const path = join(root, 'A', 'a.wav');
    const signal = await readSignal(path, { sampleRate: 48000, speed: 0.5, fmin: 0, fmax: 15000 });
    expect(signal.length).to.be.within(95990, 96010);
  });

  it('should label segments by folder, group them by file and record their spans', async () => {
    const root = tracked(
      folder({
        'A/one.wav': sineWav(7, 1000),
        'A/two.wav': sineWav(3, 1100),
        'B/three.wav': sineWav(4, 3000),
        'Noise/four.wav': sineWav(3, 200, 16000, 0.01),
      }),
    );
    const { data, report } = await loadRecordings(root, {
      audio: { mode: 'segments' },
      validationSplit: 0,
    });
    // 7 s: 0-3, 3-6, 6-7; 3 s: one; 4 s: 0-3, 3-4; noise 3 s: one.
    expect(report).to.include({ files: 4, embedded: 4, cached: 0, segments: 7, skipped: 0 });
    expect(report.perClass).to.deep.equal({
      A: { files: 2, segments: 4 },
      B: { files: 1, segments: 2 },
      Noise: { files: 1, segments: 1 },
    });
    expect(data.labels).to.deep.equal(['A', 'B']);
    expect(data.dim).to.equal(253);
    expect(data.sources.map((s) => [s?.file, s?.start, s?.end])).to.deep.equal([
      ['A/one.wav', 0, 3],
      ['A/one.wav', 3, 6],
      ['A/one.wav', 6, 7],
      ['A/two.wav', 0, 3],
      ['B/three.wav', 0, 3],
      ['B/three.wav', 3, 4],
      ['Noise/four.wav', 0, 3],
    ]);
    expect(Array.from(data.y)).to.deep.equal([1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0]);
    expect(data.embedding.source).to.equal('spectrogram-stats/1');
    expect(data.embedding.audio).to.include({ 'Crop mode': 'segments', 'Sample rate': 48000 });
  });

  it('should give no sample and no exception for a clip under 1 s in mode first (case 3)', async () => {
    const root = tracked(
      folder({
        'A/short.wav': sineWav(0.6, 1000),
        'A/long.wav': sineWav(4, 1000),
        'Noise/n.wav': sineWav(2, 100, 16000, 0.01),
      }),
    );
    const { data, report } = await loadRecordings(root, {
      audio: { mode: 'first' },
      validationSplit: 0,
    });
    expect(data.rows).to.equal(2);
    expect(report.nothing).to.have.length(1);
    expect(report.nothing[0].file).to.equal('A/short.wav');
    expect(report.nothing[0].reason).to.match(/shorter than 1 s of audio.*crop mode first/);
    expect(report.skipped).to.equal(0);
  });

  for (const mode of ['first', 'segments'] as const) {
    it(`should name a class whose every clip is under 1 s, before training, in mode ${mode} (case 2)`, async () => {
      const root = tracked(
        folder({
          'A/a.wav': sineWav(4, 1000),
          'A/b.wav': sineWav(4, 1100),
          'B/short1.wav': sineWav(0.5, 3000),
          'B/short2.wav': sineWav(0.9, 3000),
          'Noise/n.wav': sineWav(4, 100, 16000, 0.01),
        }),
      );
      const cacheDir = join(root, '..', `${root.split('/').pop()} cache`);
      const pipeline = of(root).pipe(
        load({ audio: { mode }, cacheDir }),
        upsample({ ratio: 0.5, mode: 'smote' }),
      );
      const error = await refusal(lastValueFrom(pipeline));
      expect(error.message).to.match(
        new RegExp(
          `class folder "B" gives no training rows: 2 of 2 files are shorter than 1 s of ` +
            `audio, the least a segment needs \\(crop mode ${mode}\\)`,
        ),
      );
    });
  }

  it('should skip an empty and a corrupt file with a warning each and train on the rest (case 6)', async () => {
    const random = new Random('audio/corrupt');
    const garbage = Buffer.from(
      Array.from({ length: 4096 }, () => Math.floor(random.uniform() * 256)),
    );
    const root = tracked(
      folder({
        'A/empty.wav': Buffer.alloc(0),
        'A/garbage.mp3': garbage,
        'A/good1.wav': sineWav(3, 1000),
        'A/good2.wav': sineWav(3, 1050),
        'A/good3.wav': sineWav(3, 1100),
        'Noise/n1.wav': sineWav(3, 100, 16000, 0.01),
        'Noise/n2.wav': sineWav(3, 120, 16000, 0.01),
      }),
    );
    const { data, report, warnings } = await loadRecordings(root);
    expect(report.skipped).to.equal(2);
    expect(report.nothing.map((n) => n.file)).to.deep.equal(['A/empty.wav', 'A/garbage.mp3']);
    expect(warnings).to.have.length(2);
    expect(warnings[0]).to.match(/^skipped A\/empty\.wav: .*empty file \(0 bytes\)/);
    expect(warnings[1]).to.match(/^skipped A\/garbage\.mp3: /);
    expect(report.perClass.A).to.deep.equal({ files: 5, segments: 3 });
    const files = new Set(data.sources.map((s) => s?.file));
    expect([...files].sort()).to.deep.equal([
      'A/good1.wav',
      'A/good2.wav',
      'A/good3.wav',
      'Noise/n1.wav',
      'Noise/n2.wav',
    ]);
    // A failed decode is never cached: the next load meets the same two files again.
    const again = await loadRecordings(root);
    expect(again.report).to.include({ skipped: 2, cached: 5, embedded: 0 });
  });

  it('should train binary with negative samples: -1, never validated, non-event side (case 4)', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 10; i++) files[`X/x${i}.wav`] = sineWav(3, 1000 + 10 * i);
    for (let i = 0; i < 4; i++) files[`noise/n${i}.wav`] = sineWav(3, 100 + i, 16000, 0.01);
    for (let i = 0; i < 3; i++) files[`-X/neg${i}.wav`] = sineWav(3, 2000 + 10 * i);
    const root = tracked(folder(files));
    const { data } = await loadRecordings(root);
    expect(data.labels).to.deep.equal(['X']);
    const negatives = [...Array(data.rows).keys()].filter((r) => data.y[r] === -1);
    expect(negatives).to.have.length(3);
    for (const r of negatives) {
      expect(data.parts[r]).to.equal(Part.train);
      expect(data.sources[r]?.file).to.match(/^-X\//);
    }
    // Train: 8 of X; non-event side 3 (of 4) noise + 3 negatives = 6. Ratio 1: the minority
    // (non-event side, 6) is raised to trunc(max(8, 6) * 1) = 8: two new rows, labelled 0 or -1.
    const [up] = await lastValueFrom(of(data).pipe(upsample({ ratio: 1 }), toArray()));
    const train = rowsOf(up, Part.train);
    expect(train.filter((r) => up.y[r] === 1)).to.have.length(8);
    expect(train.filter((r) => up.y[r] !== 1)).to.have.length(8);
  });

  it('should say that one class folder alone needs a non-event folder (case 5)', async () => {
    const root = tracked(folder({ 'A/a.wav': sineWav(3, 1000), 'A/b.wav': sineWav(3, 900) }));
    expect((await refusal(loadRecordings(root))).message).to.match(
      /only one class \("A"\): binary training needs a non-event folder named one of noise, background, other, silence/,
    );
  });
});

describe('embedding cache', () => {
  it('should embed no file on a second load and again only the file that changed', async () => {
    const root = tracked(
      folder({
        'A/a.wav': sineWav(3, 1000),
        'A/b.wav': sineWav(3, 1100),
        'Noise/n.wav': sineWav(3, 100, 16000, 0.01),
      }),
    );
    const cache = new EmbeddingCache(join(root, '..', `${root.split('/').pop()} cache`));
    const extractor = countingExtractor();
    const read = () =>
      readRecordingsFolder(root, { extractor, settings: { ...DEFAULT_AUDIO }, cache });

    const first = await read();
    expect(extractor.calls).to.equal(3);
    const second = await read();
    expect(extractor.calls).to.equal(3);
    expect(second.report).to.include({ embedded: 0, cached: 3 });
    expect(Array.from(second.raw.x)).to.deep.equal(Array.from(first.raw.x));

    writeFileSync(join(root, 'A', 'b.wav'), sineWav(3, 1500));
    const third = await read();
    expect(extractor.calls).to.equal(4);
    expect(third.report).to.include({ embedded: 1, cached: 2 });
  });

  it('should key entries by the settings too: another crop mode embeds again', async () => {
    const root = tracked(folder({ 'A/a.wav': sineWav(7, 1000), 'Noise/n.wav': sineWav(3, 90) }));
    const cache = new EmbeddingCache(join(root, '..', `${root.split('/').pop()} cache`));
    const extractor = countingExtractor();
    await readRecordingsFolder(root, { extractor, settings: { ...DEFAULT_AUDIO }, cache });
    const segments = { ...DEFAULT_AUDIO, mode: 'segments' as const };
    const { report } = await readRecordingsFolder(root, { extractor, settings: segments, cache });
    expect(report).to.include({ embedded: 2, cached: 0, segments: 4 });
    expect(audioSettingsId(segments, extractor)).to.not.equal(
      audioSettingsId({ ...DEFAULT_AUDIO }, extractor),
    );
  });

  it('should read a torn or foreign entry as missing and leave no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cache-'));
    roots.push(dir);
    const cache = new EmbeddingCache(dir);
    const key = EmbeddingCache.key(Buffer.from('bytes'), 'settings');
    await cache.put(key, {
      x: Float32Array.from([1, 2, 3, 4]),
      dim: 2,
      spans: [
        { start: 0, end: 3 },
        { start: 3, end: 6 },
      ],
    });
    const back = await cache.get(key);
    expect(Array.from(back!.x)).to.deep.equal([1, 2, 3, 4]);
    expect(back!.spans).to.deep.equal([
      { start: 0, end: 3 },
      { start: 3, end: 6 },
    ]);
    expect(readdirSync(dir)).to.deep.equal([`${key}.json`]);

    writeFileSync(join(dir, `${key}.json`), '{"format":"custom-classifier-embeddings/1","dim":2,');
    expect(await cache.get(key)).to.equal(undefined);
    writeFileSync(
      join(dir, `${key}.json`),
      JSON.stringify({ format: 'other', dim: 2, spans: [], x: '' }),
    );
    expect(await cache.get(key)).to.equal(undefined);
  });
});
