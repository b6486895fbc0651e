/**
 * Decoding and embedding speed of the built-in extractor on real recordings (../shared/data/
 * birds-xc: 60 MP3 clips of about 6 s, 44.1 and 48 kHz, mono and stereo), and a second load of
 * the same folder through the embedding cache.
 *
 * Prints one JSON line: seconds of the first load (every clip decoded, resampled, segmented and
 * embedded) and of the second (every clip from the cache), clips and segments per second.
 */
import { existsSync, mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { RecordingsReport } from '../src/dataset/recordings';
import { loadDataSet } from '../src/dataset/load';
import { initBackend } from '../src/train/backend';

const BIRDS = join(__dirname, '..', '..', 'shared', 'data', 'birds-xc');

function write(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function timedLoad(cacheDir: string) {
  let report: RecordingsReport | undefined;
  const start = performance.now();
  await loadDataSet(BIRDS, {
    audio: { mode: 'segments' },
    cacheDir,
    onRecordings: (r) => (report = r),
  });
  return { seconds: (performance.now() - start) / 1000, report: report! };
}

async function main(): Promise<void> {
  if (!existsSync(BIRDS)) {
    write({ bench: 'audio', skipped: `${BIRDS} is missing` });
    return;
  }
  await initBackend({ log: () => undefined });
  const cacheDir = mkdtempSync(join(tmpdir(), 'bench-audio-'));
  try {
    const first = await timedLoad(cacheDir);
    const second = await timedLoad(cacheDir);
    write({
      bench: 'audio',
      extractor: 'spectrogram-stats/1',
      clips: first.report.files,
      segments: first.report.segments,
      firstLoad: {
        seconds: Number(first.seconds.toFixed(2)),
        embedded: first.report.embedded,
        clipsPerSecond: Number((first.report.files / first.seconds).toFixed(1)),
        segmentsPerSecond: Number((first.report.segments / first.seconds).toFixed(1)),
      },
      secondLoad: {
        seconds: Number(second.seconds.toFixed(2)),
        embedded: second.report.embedded,
        cached: second.report.cached,
      },
    });
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
