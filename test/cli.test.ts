import { expect } from 'chai';
import { execFile } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import { normalizeArgs } from '../src/cli';
import { writeDemoData } from '../src/demo';
import { CLI } from './helpers';

const exec = promisify(execFile);

/** Runs the compiled command line; resolves with its exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('command line', () => {
  let dir: string;
  let data: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli test '));
    data = join(dir, 'data');
    await writeDemoData(data, 3);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("should accept BirdNET-Analyzer's option spellings", () => {
    expect(
      normalizeArgs(['train', '--i', 'a', '--o=b', '--batch_size', '8', '--val_split', '0.1']),
    ).to.deep.equal([
      'train',
      '--data',
      'a',
      '--out=b',
      '--batch-size',
      '8',
      '--validation-split',
      '0.1',
    ]);
    expect(normalizeArgs(['--upsampling_ratio', '0.5', '--focal-loss-gamma', '2'])).to.deep.equal([
      '--upsampling-ratio',
      '0.5',
      '--focal-loss-gamma',
      '2',
    ]);
  });

  it('should list every training option with its default in --help', async () => {
    const { code, stdout } = await cli('train', '--help');
    expect(code).to.equal(0);
    for (const expected of [
      '--epochs <n>',
      '(default: 50)',
      '(default: 32)',
      '(default: 0.0001)',
      '(default: 0.2)',
      'default: "repeat"',
      'smote',
      '--focal-loss-gamma',
      '(default: 0.25)',
      '(default: 42)',
    ]) {
      expect(stdout).to.include(expected);
    }
  });

  it('should refuse an unknown option value, naming the option and what it expects', async () => {
    const mode = await cli(
      'train',
      '--data',
      data,
      '--out',
      join(dir, 'm'),
      '--upsampling-mode',
      'copy',
    );
    expect(mode.code).to.equal(1);
    expect(mode.stderr).to.match(/--upsampling-mode.*copy.*repeat, mean, linear, smote/s);

    const epochs = await cli('train', '--data', data, '--out', join(dir, 'm'), '--epochs', 'ten');
    expect(epochs.code).to.equal(1);
    expect(epochs.stderr).to.include('--epochs expects an integer >= 1, got "ten"');
    expect(existsSync(join(dir, 'm'))).to.equal(false);
  });

  it('should train, save a model directory and evaluate it again', async () => {
    const out = join(dir, 'model one');
    const trained = await cli(
      'train',
      '--i',
      data,
      '--o',
      out,
      '--epochs',
      '5',
      '--learning_rate',
      '0.01',
      '--seed',
      '2',
    );
    expect(trained.code, trained.stderr).to.equal(0);
    expect(trained.stdout).to.include('macro');
    expect(trained.stdout).to.include(`model saved: ${out}`);
    expect(readFileSync(join(out, 'labels.txt'), 'utf8').trim().split('\n')).to.have.length(4);
    const params = readFileSync(join(out, 'hyperparameters.csv'), 'utf8');
    expect(params).to.match(/^Parameter,Value\n/);
    expect(params).to.include('Epochs,5\n');
    expect(params).to.include('Learning rate,0.01\n');

    const report = join(dir, 'report.csv');
    const evaluated = await cli('evaluate', '--model', out, '--data', data, '--out', report);
    expect(evaluated.code, evaluated.stderr).to.equal(0);
    // 5 folders x 10 recordings x 4 segments = 200 rows.
    expect(evaluated.stdout).to.include('200 rows');
    expect(readFileSync(report, 'utf8').split('\n')[1]).to.match(/^macro,160,/);
  });

  it('should leave a good model untouched and no partial directory when a run fails', async () => {
    const out = join(dir, 'kept');
    expect((await cli('train', '--data', data, '--out', out, '--epochs', '2')).code).to.equal(0);
    const before = readFileSync(join(out, 'weights.bin'));

    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'label,f1,f2\nA,0.1,0.2\nB,0.3\n');
    const failed = await cli('train', '--data', bad, '--label-column', 'label', '--out', out);
    expect(failed.code).to.equal(1);
    expect(failed.stderr).to.include(`${bad}: line 3: expected 3 fields as in the header, found 2`);
    expect(readFileSync(join(out, 'weights.bin')).equals(before)).to.equal(true);
    expect(readdirSync(dir).filter((name) => name.includes('saving'))).to.deep.equal([]);
  });
});
