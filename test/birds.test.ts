import { expect } from 'chai';
import { execFile } from 'child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import { BIRDS_RECIPE, CLI, sharedData } from './helpers';

const run = promisify(execFile);

interface PartReport {
  macro: { averagePrecision: number };
  top1: number;
  rows: number;
}

/**
 * Real bird recordings (6 species x 10 MP3 clips of about 6 s, 44.1 and 48 kHz, mono and stereo)
 * through the command line as a user runs it: decoded, resampled, cut into 3 s segments, embedded
 * by the built-in extractor, split by file and trained. Chance is a macro AUPRC of about 0.17.
 */
describe('bird recordings, real data, seeds 1 to 5', function () {
  this.timeout(20 * 60 * 1000);
  let out: string;

  before(() => {
    out = mkdtempSync(join(tmpdir(), 'birds-'));
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it('should train from the MP3 files to a mean validation macro AUPRC of at least 0.55', async function () {
    const data = sharedData(this, 'birds-xc');
    const cache = join(out, 'cache');
    const train = async (seed: number) => {
      const started = Date.now();
      const { stderr } = await run(
        process.execPath,
        [
          CLI,
          'train',
          '--data',
          data,
          ...BIRDS_RECIPE,
          '--seed',
          String(seed),
          '--cache',
          cache,
          '--out',
          join(out, `seed ${seed}`),
        ],
        { maxBuffer: 16 * 1024 * 1024 },
      );
      return { seed, seconds: (Date.now() - started) / 1000, log: stderr };
    };

    // The first run embeds every clip; the others find them in the cache.
    const runs = [await train(1)];
    for (const seed of [2, 3, 4, 5]) runs.push(await train(seed));

    const figures = runs.map(({ seed, seconds, log }) => {
      const dir = join(out, `seed ${seed}`);
      expect(readdirSync(dir)).to.include.members(['model.json', 'labels.txt', 'provenance.json']);
      expect(readFileSync(join(dir, 'labels.txt'), 'utf8').trim().split('\n')).to.have.length(6);
      const provenance = JSON.parse(readFileSync(join(dir, 'provenance.json'), 'utf8'));
      expect(provenance.embedding.source).to.equal('spectrogram-stats/1');
      const report = JSON.parse(readFileSync(join(dir, 'evaluation.json'), 'utf8')) as {
        validation: PartReport;
      };
      const recordings =
        /(\d+) recordings \((\d+) embedded, (\d+) from the cache\), (\d+) segments/.exec(log);
      return {
        seed,
        seconds,
        auprc: report.validation.macro.averagePrecision,
        top1: report.validation.top1,
        rows: report.validation.rows,
        recordings: recordings?.slice(1).map(Number),
        backend: provenance.backend as string,
      };
    });

    for (const f of figures) {
      process.stdout.write(
        `      seed ${f.seed}: macro AUPRC ${f.auprc.toFixed(4)}, top-1 ${f.top1.toFixed(4)} ` +
          `(${f.rows} validation segments), recordings/embedded/cached/segments ` +
          `${f.recordings?.join('/')}, ${f.seconds.toFixed(1)} s, backend ${f.backend}\n`,
      );
    }
    expect(figures[0].recordings).to.deep.equal([60, 60, 0, figures[0].recordings![3]]);
    for (const f of figures.slice(1)) expect(f.recordings?.slice(0, 3)).to.deep.equal([60, 0, 60]);

    const mean = figures.reduce((s, f) => s + f.auprc, 0) / figures.length;
    process.stdout.write(`      mean macro AUPRC over seeds 1-5: ${mean.toFixed(4)}\n`);
    expect(mean).to.be.at.least(0.55);
  });
});
