import { expect } from 'chai';
import { execFile, spawn } from 'child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import { normalizeArgs } from '../src/cli';
import { writeSyntheticRecordings } from '../src/audio/synthetic';
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
    // Help text wraps at the terminal's width: compared with its line breaks as spaces.
    const help = stdout.replace(/\s+/g, ' ');
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
      // BirdNET's input: 3 s at 48 kHz
      'sample rate the embedding model takes (default: 48000)',
      'segment length the embedding model takes (default: 3)',
    ]) {
      expect(help).to.include(expected);
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

  it('should run the demo: synthetic recordings in, a model that tells the call types apart out', async () => {
    const out = join(dir, 'demo run');
    const { code, stderr } = await cli('demo', '--out', out);
    expect(code, stderr).to.equal(0);
    expect(stderr).to.match(/30 recordings \(30 embedded, 0 from the cache\), 60 segments/);
    const classes = readdirSync(join(out, 'data')).sort();
    expect(classes).to.have.length(5);
    for (const c of classes) expect(readdirSync(join(out, 'data', c))).to.have.length(6);
    const labels = readFileSync(join(out, 'model', 'labels.txt'), 'utf8')
      .trim()
      .split('\n');
    expect(labels).to.have.length(4);
    const report = JSON.parse(readFileSync(join(out, 'model', 'evaluation.json'), 'utf8'));
    expect(report.validation.macro.averagePrecision).to.be.at.least(0.9);
    const provenance = JSON.parse(readFileSync(join(out, 'model', 'provenance.json'), 'utf8'));
    expect(provenance.embedding).to.include({ source: 'spectrogram-stats/1', dim: 253 });
  });

  it('should refuse to replace a folder or file that holds no model', async () => {
    const notes = join(dir, 'notes');
    mkdirSync(notes);
    writeFileSync(join(notes, 'thesis.txt'), 'precious');
    const folder = await cli('train', '--data', data, '--out', notes, '--epochs', '1');
    expect(folder.code).to.equal(1);
    expect(folder.stderr).to.include('holds no model');
    expect(readFileSync(join(notes, 'thesis.txt'), 'utf8')).to.equal('precious');

    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'precious');
    const plain = await cli('train', '--data', data, '--out', file, '--epochs', '1');
    expect(plain.code).to.equal(1);
    expect(plain.stderr).to.include('is not a folder');
    expect(readFileSync(file, 'utf8')).to.equal('precious');

    const below = await cli('train', '--data', data, '--out', join(file, 'model'));
    expect(below.code).to.equal(1);
    expect(below.stderr).to.include('cannot be a model directory');
    expect(below.stderr, 'refused before training').to.not.include('epoch 1/');
  });

  it('should refuse to replace a model whose folder also holds other files', async () => {
    const out = join(dir, 'with notes');
    expect((await cli('train', '--data', data, '--out', out, '--epochs', '1')).code).to.equal(0);
    writeFileSync(join(out, 'NOTES.md'), 'field notes');
    const before = readFileSync(join(out, 'weights.bin'));

    const again = await cli('train', '--data', data, '--out', out, '--epochs', '1');

    expect(again.code).to.equal(1);
    expect(again.stderr).to.include('also NOTES.md, which a new model would delete');
    expect(readFileSync(join(out, 'NOTES.md'), 'utf8')).to.equal('field notes');
    expect(readFileSync(join(out, 'weights.bin')).equals(before)).to.equal(true);
  });

  it("should evaluate recordings cut and filtered with the model's audio settings", async () => {
    const clips = join(dir, 'clips');
    await writeSyntheticRecordings(clips, { clipsPerClass: 2 });
    const out = join(dir, 'segments model');
    const audio = ['--crop-mode', 'segments', '--overlap', '1.5', '--fmin', '500'];
    const trained = await cli('train', '--data', clips, '--out', out, '--epochs', '2', ...audio);
    expect(trained.code, trained.stderr).to.equal(0);
    const segments = Number(/recordings \(.*?\), (\d+) segments/.exec(trained.stderr)![1]);
    // 5 folders x 2 clips; crop mode center would give fewer segments than this.
    const center = await cli(
      'train',
      '--data',
      clips,
      '--out',
      join(dir, 'center'),
      '--epochs',
      '1',
    );
    const centerSegments = Number(/recordings \(.*?\), (\d+) segments/.exec(center.stderr)![1]);
    expect(segments).to.be.above(centerSegments);

    const evaluated = await cli('evaluate', '--model', out, '--data', clips);
    expect(evaluated.code, evaluated.stderr).to.equal(0);
    expect(evaluated.stdout).to.include(`${segments} rows`);

    const cache = join(dir, 'evaluation cache');
    mkdirSync(cache);
    const other = await cli(
      'evaluate',
      ...['--model', out, '--data', clips, '--crop-mode', 'center', '--cache', cache],
    );
    expect(other.code).to.equal(1);
    expect(other.stderr).to.include('Crop mode center (model: segments)');
    expect(readdirSync(cache), 'refused before any recording was embedded').to.deep.equal([]);
  });

  it('should train without a validation part only when allowed to', async () => {
    const out = join(dir, 'no validation');
    const refused = await cli('train', '--data', data, '--out', out, '--validation-split', '0');
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include('no validation rows');
    expect(refused.stderr).to.include('--allow-no-validation');

    // A split above 0 leaves no validation row when every class has a single unit.
    writeFileSync(join(dir, 'one each.csv'), 'label,f1\nA,1\nB,2\n');
    const single = await cli(
      'train',
      '--data',
      join(dir, 'one each.csv'),
      '--label-column',
      'label',
      '--out',
      out,
    );
    expect(single.code).to.equal(1);
    expect(single.stderr).to.include('the validation split of 0.2 left no validation rows');
    expect(single.stderr).to.include('single recording').and.include('--allow-no-validation');

    const args = ['--validation-split', '0', '--allow-no-validation', '--epochs', '3'];
    const trained = await cli('train', '--data', data, '--out', out, ...args);
    expect(trained.code, trained.stderr).to.equal(0);
    // Without validation every epoch runs and the last one's weights are kept.
    const history = readFileSync(join(out, 'history.csv'), 'utf8').trim().split('\n');
    expect(history).to.have.length(1 + 3);
  });

  it('should stop on Ctrl-C and leave the saved model as it was', async () => {
    const out = join(dir, 'interrupted');
    expect((await cli('train', '--data', data, '--out', out, '--epochs', '1')).code).to.equal(0);
    const before = readFileSync(join(out, 'weights.bin'));

    const child = spawn(process.execPath, [
      CLI,
      'train',
      '--data',
      data,
      '--out',
      out,
      '--epochs',
      '100000',
      '--batch-size',
      '1',
    ]);
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!sent && stderr.includes('epoch 1/')) sent = child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    // 128 + SIGINT (2), as a shell reports a command ended by Ctrl-C.
    expect(code).to.equal(130);
    expect(stderr).to.include('interrupted: training cancelled, nothing saved');
    expect(readFileSync(join(out, 'weights.bin')).equals(before)).to.equal(true);
  });

  it("should score a table by the model's column names, in whatever order it lists them", async () => {
    // 40 rows of A and B, three features whose values tell the classes apart.
    const rows = Array.from({ length: 40 }, (_, i) => {
      const label = i % 2 === 0 ? 'A' : 'B';
      const shift = label === 'A' ? 0 : 3;
      const c = (i % 3) / 10;
      // d holds c's values under another name.
      return { label, a: shift + (i % 5) / 10, b: 1 - shift + (i % 7) / 10, c, d: c };
    });
    const table = (columns: string[]) =>
      [
        columns.join(','),
        ...rows.map((r) => columns.map((c) => r[c as keyof typeof r]).join(',')),
      ].join('\n') + '\n';
    writeFileSync(join(dir, 'train.csv'), table(['label', 'a', 'b', 'c']));
    writeFileSync(join(dir, 'reordered.csv'), table(['c', 'label', 'b', 'a']));
    writeFileSync(join(dir, 'renamed.csv'), table(['label', 'a', 'b', 'd']));
    const out = join(dir, 'table model');
    const trained = await cli(
      'train',
      '--data',
      join(dir, 'train.csv'),
      '--label-column',
      'label',
      '--out',
      out,
      '--epochs',
      '3',
    );
    expect(trained.code, trained.stderr).to.equal(0);

    const report = async (table: string) => {
      const file = join(dir, `${table}.report.csv`);
      const run = await cli(
        'evaluate',
        '--model',
        out,
        '--data',
        join(dir, table),
        '--label-column',
        'label',
        '--out',
        file,
      );
      expect(run.code, run.stderr).to.equal(0);
      return readFileSync(file, 'utf8');
    };
    expect(await report('reordered.csv')).to.equal(await report('train.csv'));

    const renamed = await cli(
      'evaluate',
      '--model',
      out,
      '--data',
      join(dir, 'renamed.csv'),
      '--label-column',
      'label',
    );
    expect(renamed.code).to.not.equal(0);
    expect(renamed.stderr, renamed.stderr).to.include('lacks "c"').and.include('has "d" besides');

    // One column more: named too, not only counted.
    writeFileSync(join(dir, 'wider.csv'), table(['label', 'a', 'b', 'c', 'd']));
    const wider = await cli(
      'evaluate',
      '--model',
      out,
      '--data',
      join(dir, 'wider.csv'),
      '--label-column',
      'label',
    );
    expect(wider.code).to.not.equal(0);
    expect(wider.stderr, wider.stderr).to.include('has "d" besides');
  });

  it("should read a table to evaluate with the model's column options unless given", async () => {
    // 30 rows of A and B from 6 recordings, fields split by "|"; a column of notes that is not
    // a feature.
    const rows = Array.from({ length: 30 }, (_, i) => {
      const species = i % 2 === 0 ? 'A' : 'B';
      return { Rec: i % 6, Species: species, f1: species === 'A' ? i / 30 : 2 + i / 30, Note: i };
    });
    const table = (name: string, columns: string[], renamed: Record<string, string> = {}) => {
      const header = columns.map((c) => renamed[c] ?? c).join('|');
      const lines = rows.map((r) => columns.map((c) => r[c as keyof typeof r]).join('|'));
      writeFileSync(join(dir, name), [header, ...lines].join('\n') + '\n');
      return join(dir, name);
    };
    const file = table('columns.csv', ['Rec', 'Species', 'f1', 'Note']);
    const out = join(dir, 'columns model');
    const trained = await cli(
      'train',
      '--data',
      file,
      '--label-column',
      'Species',
      '--file-column',
      'Rec',
      '--ignore-columns',
      'Note',
      '--delimiter',
      '|',
      '--out',
      out,
      '--epochs',
      '2',
      '--quiet',
    );
    expect(trained.code, trained.stderr).to.equal(0);
    // Quiet leaves out the progress and the backend, not the results.
    expect(trained.stderr).to.not.include('epoch 1/2').and.not.include('TF.js backend');
    expect(trained.stdout).to.match(/^validation \(/);
    expect(trained.stdout).to.include(`model saved: ${out}`);
    const provenance = JSON.parse(readFileSync(join(out, 'provenance.json'), 'utf8'));
    expect(provenance.embedding.table).to.deep.equal({
      labelColumn: 'Species',
      labelSeparator: ',',
      fileColumn: 'Rec',
      ignoreColumns: ['Note'],
      delimiter: '|',
    });

    const evaluate = (data: string, ...options: string[]) =>
      cli('evaluate', '--model', out, '--data', data, ...options);
    const evaluated = await evaluate(file);
    expect(evaluated.code, evaluated.stderr).to.equal(0);
    expect(evaluated.stdout).to.include('30 rows');

    // The recording and note columns are not needed to score.
    const bare = await evaluate(table('bare.csv', ['f1', 'Species']));
    expect(bare.code, bare.stderr).to.equal(0);
    expect(bare.stdout).to.include('30 rows');

    const renamed = table('renamed.csv', ['Rec', 'Species', 'f1'], { Species: 'Kind' });
    const unnamed = await evaluate(renamed);
    expect(unnamed.code).to.equal(1);
    expect(unnamed.stderr).to.include(
      'no label column "Species" (the model\'s, from its provenance.json',
    );
    expect((await evaluate(renamed, '--label-column', 'Kind')).code).to.equal(0);

    // Another label column given: the model's one is then a column the model has no feature for.
    const twoLabels = table('two labels.csv', ['Species', 'f1', 'Species'], { Species: 'Kind' });
    writeFileSync(
      twoLabels,
      readFileSync(twoLabels, 'utf8').replace(/^Kind\|f1\|Kind/, 'Kind|f1|Species'),
    );
    const other = await evaluate(twoLabels, '--label-column', 'Kind');
    expect(other.code).to.equal(1);
    expect(other.stderr).to.include('has "Species" besides');

    // An embeddings file is not read as a table because the model came from one.
    const embeddings = join(dir, 'rec.birdnet.embeddings.txt');
    writeFileSync(embeddings, '0.0\t3.0\t0.5\n');
    const notTable = await evaluate(embeddings);
    expect(notTable.code).to.equal(1);
    expect(notTable.stderr).to.include('an embeddings file carries no labels');

    const help = (await cli('evaluate', '--help')).stdout.replace(/\s+/g, ' ');
    expect(help).to.include('--label-separator <sep> separator of several labels in one cell');
    expect(help).to.include('(default: the model\'s, else ",")');
    expect(help).to.not.include('(default: ",")');
    // A hand-edited provenance.json: a table entry of another type is left out, not used.
    const edited = join(dir, 'edited model');
    cpSync(out, edited, { recursive: true });
    const kept = JSON.parse(readFileSync(join(edited, 'provenance.json'), 'utf8'));
    kept.embedding.table = { labelColumn: 'Species', ignoreColumns: 'Note', delimiter: null };
    writeFileSync(join(edited, 'provenance.json'), JSON.stringify(kept));
    const loose = await cli('evaluate', '--model', edited, '--data', file, '--delimiter', '|');
    expect(loose.code).to.equal(1);
    expect(loose.stderr).to.include('has "Rec", "Note" besides');

    const badDelimiter = await evaluate(file, '--delimiter', '||');
    expect(badDelimiter.stderr).to.include('--delimiter expects one character');
  });

  it('should refuse a report path inside the model, on a folder or in no folder', async () => {
    const out = join(dir, 'model to report on');
    expect((await cli('train', '--data', data, '--out', out, '--epochs', '1')).code).to.equal(0);
    const modelJson = readFileSync(join(out, 'model.json'));
    for (const [target, message] of [
      [join(out, 'model.json'), 'inside the model directory'],
      [dir, 'a folder'],
      [join(dir, 'no such folder', 'report.csv'), 'does not exist'],
    ]) {
      const run = await cli('evaluate', '--model', out, '--data', data, '--out', target);
      expect(run.code).to.equal(1);
      expect(run.stderr).to.include(message);
    }
    expect(readFileSync(join(out, 'model.json')).equals(modelJson)).to.equal(true);
  });

  it('should evaluate a model on data that holds only some of its classes', async () => {
    const out = join(dir, 'for one class');
    expect((await cli('train', '--data', data, '--out', out, '--epochs', '2')).code).to.equal(0);
    const one = join(dir, 'one class');
    const name = readdirSync(data).filter((f) => f !== 'Noise')[0];
    cpSync(join(data, name), join(one, name), { recursive: true });
    const evaluated = await cli('evaluate', '--model', out, '--data', one);
    expect(evaluated.code, evaluated.stderr).to.equal(0);
    // One folder of 10 recordings x 4 segments.
    expect(evaluated.stdout).to.include('40 rows');
  });
});
