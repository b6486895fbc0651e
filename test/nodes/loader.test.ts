import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { EventEmitter } from 'node:events';
import type { NodeMessage, NodeStatus } from 'node-red';
import type { TestFlows } from 'node-red-node-test-helper';
import loaderNode from '../../nodes/loader/loader';
import { DataSet, DataSetSummary, Part } from '../../src/dataset/dataset';
import { helper, useNodeRed } from './harness';

/** Writes text files under `root`, creating their folders. */
function write(root: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), text);
  }
}

/** A CSV `label,f1,f2` with `counts[label]` rows per label; f1 numbers the rows from 0. */
function labelCsv(counts: Record<string, number>): string {
  let id = 0;
  const lines = ['label,f1,f2'];
  for (const [label, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++, id++) lines.push(`${label},${id},${id / 2}`);
  }
  return lines.join('\n') + '\n';
}

/** A BirdNET-Analyzer embeddings file of `segments` lines of two values, the first being `id`. */
function embeddingsFile(id: number, segments: number): string {
  return Array.from({ length: segments }, (_, s) => `${3 * s}\t${3 * s + 3}\t${id},${s}\n`).join(
    '',
  );
}

/** A node of a test flow: its settings are whatever its editor stores. */
type FlowNode = { id: string; type: string; wires?: string[][]; [setting: string]: unknown };

/** A test flow, typed as the test helper takes it. */
const asFlow = (nodes: FlowNode[]) => nodes as unknown as TestFlows;

/** The next message a helper node receives. */
function nextInput(id: string): Promise<NodeMessage> {
  return new Promise((resolve) => helper.getNode(id).once('input', resolve));
}

/** Messages a helper node receives from now on. */
function inputs(id: string): NodeMessage[] {
  const received: NodeMessage[] = [];
  helper.getNode(id).on('input', (msg: NodeMessage) => received.push(msg));
  return received;
}

/** Status texts a node shows from now on (the test helper reports each status call). */
function statusTexts(id: string): string[] {
  const texts: string[] = [];
  // The helper reports each status call as an event the Node typings do not list.
  const node = helper.getNode(id) as unknown as EventEmitter;
  node.on('call:status', (call: { args: [NodeStatus] }) => texts.push(String(call.args[0].text)));
  return texts;
}

/** The text of the error a Catch node received, without the `Error: ` Node-RED puts first. */
function caughtText(msg: NodeMessage): string {
  return (msg.error as { message: string }).message.replace(/^Error: /, '');
}

/** Lets pending status reports and deliveries arrive. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * A flow of one loader `l1` wired to helper `out`, with a Catch node wired to helper `caught`,
 * and any `extra` nodes.
 */
function flow(loader: Record<string, unknown>, ...extra: FlowNode[]): TestFlows {
  return asFlow([
    { id: 'l1', type: 'classifier-loader', name: 'loader', wires: [['out']], ...loader },
    { id: 'out', type: 'helper' },
    { id: 'c1', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', type: 'helper' },
    ...extra,
  ]);
}

function rowX(data: DataSet, r: number): number[] {
  return Array.from(data.x.subarray(r * data.dim, (r + 1) * data.dim));
}

describe('classifier-loader node', function () {
  useNodeRed();
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'loader-node-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    delete process.env.LOADER_TEST_DIR;
    delete process.env.LOADER_TEST_FILE;
    helper.settings({ userDir: undefined });
  });

  describe('from a path', function () {
    it('should load a CSV table and split it per class with the seed', async function () {
      // A 10 -> train trunc(8.0) = 8, validation 2; B 5 -> 4 / 1; C 1 -> max(1, 0) = 1 / 0.
      write(dir, { 'data.csv': labelCsv({ A: 10, B: 5, C: 1 }) });
      const path = join(dir, 'data.csv');
      await helper.load(loaderNode, flow({ path, labelColumn: 'label', seed: 3 }));
      const texts = statusTexts('l1');
      const output = nextInput('out');

      helper.getNode('l1').receive({ payload: 'go', topic: 'frogs' });
      const msg = await output;
      await settle();

      const data = msg.payload as DataSet;
      const summary = msg.summary as DataSetSummary;
      expect(data.labels).to.deep.equal(['A', 'B', 'C']);
      expect([data.rows, data.dim, data.seed]).to.deep.equal([16, 2, 3]);
      expect(summary.parts).to.deep.equal({ train: 13, validation: 3, test: 0 });
      expect(summary.perClass).to.deep.equal({
        A: { train: 8, validation: 2, test: 0, synthetic: 0 },
        B: { train: 4, validation: 1, test: 0, synthetic: 0 },
        C: { train: 1, validation: 0, test: 0, synthetic: 0 },
      });
      expect(msg.topic).to.equal('frogs');
      expect(texts).to.deep.equal(['loading', '16 x 3']);
    });

    it('should load an embeddings folder, keeping each recording on one side', async function () {
      // Units are files. A: 5 files -> trunc(4.0) = 4 train / 1 validation, 2 rows each;
      // B: 2 files -> trunc(1.6) = 1 / 1, 3 rows each; noise: 1 file -> 1 / 0, 2 rows.
      // Train 4 * 2 + 3 + 2 = 13 rows, validation 2 + 3 = 5; classes A and B.
      const files: Record<string, string> = {};
      for (let f = 0; f < 5; f++) files[`A/a${f}.txt`] = embeddingsFile(f, 2);
      for (let f = 5; f < 7; f++) files[`B/b${f}.txt`] = embeddingsFile(f, 3);
      files['Noise/n7.txt'] = embeddingsFile(7, 2);
      write(dir, files);
      await helper.load(loaderNode, flow({ path: dir, format: 'folder', validationSplit: '0.2' }));
      const texts = statusTexts('l1');
      const output = nextInput('out');

      helper.getNode('l1').receive({ payload: true });
      const data = (await output).payload as DataSet;
      await settle();

      expect(data.labels).to.deep.equal(['A', 'B']);
      expect(data.rows).to.equal(18);
      const parts = Array.from(data.parts);
      expect(parts.filter((p) => p === Part.train)).to.have.length(13);
      expect(parts.filter((p) => p === Part.validation)).to.have.length(5);
      const partOfFile = new Map<string, number>();
      data.sources.forEach((s, r) => {
        expect(partOfFile.get(s!.file) ?? data.parts[r]).to.equal(data.parts[r]);
        partOfFile.set(s!.file, data.parts[r]);
      });
      expect(texts).to.deep.equal(['loading', '18 x 2']);
    });

    it('should take the path from the message only when the path type is msg', async function () {
      write(dir, { 'one.csv': labelCsv({ A: 2, B: 2 }), 'two.csv': labelCsv({ A: 3, B: 3 }) });
      await helper.load(loaderNode, flow({ path: join(dir, 'one.csv'), labelColumn: 'label' }));
      let output = nextInput('out');
      helper.getNode('l1').receive({ payload: join(dir, 'two.csv') });
      expect(((await output).payload as DataSet).rows).to.equal(4);
      await helper.unload();

      await helper.load(
        loaderNode,
        flow({ path: 'filename', pathType: 'msg', labelColumn: 'label' }),
      );
      output = nextInput('out');
      helper.getNode('l1').receive({ payload: 'x', filename: join(dir, 'two.csv') });
      expect(((await output).payload as DataSet).rows).to.equal(6);
    });

    it('should resolve environment variables in the path', async function () {
      write(dir, { 'data.csv': labelCsv({ A: 2, B: 3 }) });
      process.env.LOADER_TEST_DIR = dir;
      process.env.LOADER_TEST_FILE = join(dir, 'data.csv');
      await helper.load(
        loaderNode,
        flow({ path: '${LOADER_TEST_DIR}/data.csv', labelColumn: 'label' }),
      );
      let output = nextInput('out');
      helper.getNode('l1').receive({ payload: 1 });
      expect(((await output).payload as DataSet).rows).to.equal(5);
      await helper.unload();

      await helper.load(
        loaderNode,
        flow({ path: 'LOADER_TEST_FILE', pathType: 'env', labelColumn: 'label' }),
      );
      output = nextInput('out');
      helper.getNode('l1').receive({ payload: 1 });
      expect(((await output).payload as DataSet).rows).to.equal(5);
    });

    it('should resolve relative paths against the Node-RED user directory', async function () {
      // Training: A 5 -> 4 / 1, B 5 -> 4 / 1; the 3 test rows are marked test, not split.
      write(dir, {
        'data/train.csv': labelCsv({ A: 5, B: 5 }),
        'data/test.csv': labelCsv({ A: 1, B: 2 }),
      });
      helper.settings({ userDir: dir });
      await helper.load(
        loaderNode,
        flow({ path: 'data/train.csv', labelColumn: 'label', testData: 'data/test.csv' }),
      );
      const output = nextInput('out');
      helper.getNode('l1').receive({ payload: 1 });

      const summary = (await output).summary as DataSetSummary;
      expect(summary.parts).to.deep.equal({ train: 8, validation: 2, test: 3 });
    });

    it('should send a ragged table to a Catch node with the file and line', async function () {
      write(dir, { 'bad.csv': 'label,f1,f2\nA,1,2\nB,3\nA,4,5\n' });
      const path = join(dir, 'bad.csv');
      await helper.load(loaderNode, flow({ path, labelColumn: 'label' }));
      const texts = statusTexts('l1');
      const sent = inputs('out');
      const caught = nextInput('caught');

      helper.getNode('l1').receive({ payload: 1 });
      const msg = await caught;
      await settle();

      expect(caughtText(msg)).to.equal(
        `${path}: line 3: expected 3 fields as in the header, found 2`,
      );
      expect((msg.error as { source: { id: string } }).source.id).to.equal('l1');
      expect(texts[texts.length - 1]).to.match(/^failed: expected 3 fields/);
      expect(sent).to.have.length(0);
    });

    it('should name a missing label column with the file and its header', async function () {
      write(dir, { 'data.csv': labelCsv({ A: 2, B: 2 }) });
      const path = join(dir, 'data.csv');
      await helper.load(loaderNode, flow({ path, labelColumn: 'Species' }));
      const texts = statusTexts('l1');
      const caught = nextInput('caught');

      helper.getNode('l1').receive({ payload: 1 });
      const text = caughtText(await caught);
      await settle();

      expect(text).to.equal(
        `${path}: line 1: no label column "Species"; the header has label, f1, f2`,
      );
      expect(texts[texts.length - 1]).to.match(/^failed: /);
    });

    it('should refuse a path that is not of the chosen format', async function () {
      await helper.load(loaderNode, flow({ path: dir, format: 'npz' }));
      const caught = nextInput('caught');
      helper.getNode('l1').receive({ payload: 1 });
      expect(caughtText(await caught)).to.equal(
        `${dir}: format "npz" expects an .npz file, found a folder`,
      );
    });

    it('should refuse an invalid validation split, naming the setting', async function () {
      write(dir, { 'data.csv': labelCsv({ A: 2, B: 2 }) });
      await helper.load(
        loaderNode,
        flow({ path: join(dir, 'data.csv'), labelColumn: 'label', validationSplit: '1' }),
      );
      const caught = nextInput('caught');
      helper.getNode('l1').receive({ payload: 1 });
      expect(caughtText(await caught)).to.equal(
        'validation split: expected a number from 0 up to (not including) 1, got "1"',
      );
    });
  });

  describe('one sample per message', function () {
    /** Loader `l1` in samples mode, plus a Complete node that reports each done() of it. */
    async function loadSamples(settings: Record<string, unknown> = {}) {
      await helper.load(
        loaderNode,
        flow(
          { mode: 'samples', seed: 5, ...settings },
          { id: 'k1', type: 'complete', scope: ['l1'], uncaught: false, wires: [['doneFor']] },
          { id: 'doneFor', type: 'helper' },
        ),
      );
    }

    it('should collect samples until msg.complete and send one data set', async function () {
      // A 6 samples -> trunc(4.8) = 4 train / 2 validation; B 4 -> trunc(3.2) = 3 / 1.
      await loadSamples();
      const texts = statusTexts('l1');
      const finished = inputs('doneFor');
      const output = nextInput('out');
      const l1 = helper.getNode('l1');

      for (let i = 0; i < 10; i++) {
        const payload = i % 2 === 0 ? [i, 2 * i, 1] : Float32Array.of(i, 2 * i, 1);
        const source = { file: `rec${i}.wav`, start: 0, end: 3 };
        l1.receive({ payload, label: i < 6 ? 'A' : 'B', source });
      }
      l1.receive({ payload: 1700000000000, complete: true, topic: 'batch' });
      const msg = await output;
      await settle();

      const data = msg.payload as DataSet;
      expect(data.labels).to.deep.equal(['A', 'B']);
      expect([data.rows, data.dim, data.seed]).to.deep.equal([10, 3, 5]);
      expect(rowX(data, 7)).to.deep.equal([7, 14, 1]);
      expect(data.sources[7]).to.deep.equal({ file: 'rec7.wav', start: 0, end: 3 });
      expect((msg.summary as DataSetSummary).perClass).to.deep.equal({
        A: { train: 4, validation: 2, test: 0, synthetic: 0 },
        B: { train: 3, validation: 1, test: 0, synthetic: 0 },
      });
      expect(msg.topic).to.equal('batch');
      expect(msg).not.to.have.property('complete');
      expect(finished).to.have.length(11);
      expect(texts.slice(-3)).to.deep.equal(['collecting 9', 'collecting 10', '10 x 2']);
    });

    it('should take a last sample from the completing message', async function () {
      await loadSamples();
      const output = nextInput('out');
      const l1 = helper.getNode('l1');
      l1.receive({ payload: [1, 1], label: 'A' });
      l1.receive({ payload: [2, 2], label: 'B, A' });
      l1.receive({ payload: [0, 0], label: 'noise', complete: true });

      const data = (await output).payload as DataSet;
      expect(data.rows).to.equal(3);
      expect(Array.from(data.y)).to.deep.equal([1, 0, 1, 1, 0, 0]);
    });

    it('should refuse an embedding of another length, naming both lengths', async function () {
      await loadSamples();
      const caught = nextInput('caught');
      const l1 = helper.getNode('l1');
      l1.receive({ payload: [1, 2, 3], label: 'A' });
      l1.receive({ payload: [4, 5], label: 'B' });

      expect(caughtText(await caught)).to.equal(
        'msg.payload (message 2): embedding has 2 values, expected 3 as in message 1',
      );

      // The refused sample is not kept; the next ones still count.
      const output = nextInput('out');
      l1.receive({ payload: [4, 5, 6], label: 'B' });
      l1.receive({ complete: true });
      expect(((await output).payload as DataSet).rows).to.equal(2);
    });

    it('should refuse a sample without a label or with a value that is not finite', async function () {
      await loadSamples();
      const errors = inputs('caught');
      const l1 = helper.getNode('l1');
      l1.receive({ payload: [1, 2] });
      l1.receive({ payload: [1, NaN], label: 'A' });
      l1.receive({ payload: 'text', label: 'A' });
      await settle();

      expect(errors.map(caughtText)).to.deep.equal([
        'msg.label (message 1): expected the sample\'s label, e.g. "A", "A,B", "-A" or "noise"; ' +
          'got nothing',
        'msg.payload (message 2): value 2 is not a finite number (NaN)',
        'msg.payload (message 3): expected an embedding (an array of numbers or a Float32Array), ' +
          'got string "text"',
      ]);
    });

    it('should drop the collected samples on msg.reset', async function () {
      await loadSamples();
      const texts = statusTexts('l1');
      const output = nextInput('out');
      const l1 = helper.getNode('l1');
      l1.receive({ payload: [9, 9, 9], label: 'C' });
      l1.receive({ payload: [9, 9, 9], label: 'D' });
      l1.receive({ reset: true });
      // A different length is fine after a reset: nothing of the old set remains.
      l1.receive({ payload: [1, 2], label: 'A' });
      l1.receive({ payload: [3, 4], label: 'B' });
      l1.receive({ complete: true });

      const data = (await output).payload as DataSet;
      await settle();
      expect(data.labels).to.deep.equal(['A', 'B']);
      expect(data.rows).to.equal(2);
      expect(texts).to.include('collecting 0');
    });

    it('should say so when msg.complete arrives with nothing collected', async function () {
      await loadSamples();
      const caught = nextInput('caught');
      helper.getNode('l1').receive({ complete: true });
      expect(caughtText(await caught)).to.equal(
        'msg.complete: no samples collected since the last data set or reset',
      );
    });
  });
});
