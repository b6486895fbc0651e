import { expect } from 'chai';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { NodeMessage } from 'node-red';
import type { TestFlows } from 'node-red-node-test-helper';
import loaderNode from '../../nodes/loader/loader';
import { DataSet } from '../../src/dataset/dataset';
import { helper, useNodeRed } from './harness';

// Node-RED's own watch node, as a flow uses it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const watchNode = require('@node-red/nodes/core/storage/23-watch.js') as unknown;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `segments` lines of a BirdNET-Analyzer embeddings file, two values each, the first `id`. */
function lines(id: number, segments: number, from = 0): string {
  return Array.from(
    { length: segments },
    (_, s) => `${3 * (from + s)}\t${3 * (from + s) + 3}\t${id},${from + s}\n`,
  ).join('');
}

/**
 * A recorder still writing: Node-RED's watch node on a training folder fires for every write to
 * a clip, and the loader, waiting for the folder to settle, loads once, the clip complete.
 */
describe('classifier-loader node behind a watch node', function () {
  useNodeRed();
  this.timeout(30000);
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'watched '));
    for (const folder of ['A', 'noise']) {
      mkdirSync(join(root, folder));
      for (let f = 0; f < 5; f++) writeFileSync(join(root, folder, `old${f}.txt`), lines(f, 2));
    }
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('should load once, complete, when the watch node fires five times for a clip being written (case 21)', async () => {
    const flow = [
      { id: 'watcher', type: 'watch', files: root, recursive: true, wires: [['load', 'events']] },
      { id: 'events', type: 'helper' },
      {
        id: 'load',
        type: 'classifier-loader',
        path: root,
        pathType: 'str',
        settle: 0.5,
        validationSplit: 0,
        wires: [['loaded']],
      },
      { id: 'loaded', type: 'helper' },
    ];
    await helper.load([watchNode, loaderNode] as never, flow as unknown as TestFlows);
    const events: NodeMessage[] = [];
    const loaded: DataSet[] = [];
    helper.getNode('events').on('input', (msg: NodeMessage) => events.push(msg));
    helper.getNode('loaded').on('input', (msg: NodeMessage) => loaded.push(msg.payload as DataSet));
    await sleep(200);

    // Five writes of one clip, 240 ms apart (the watch node merges changes within 200 ms): 10
    // segments in all.
    const clip = join(root, 'A', 'new.txt');
    for (let part = 0; part < 5; part++) {
      appendFileSync(clip, lines(99, 2, 2 * part));
      await sleep(240);
    }
    const deadline = Date.now() + 10000;
    while (loaded.length === 0 && Date.now() < deadline) await sleep(50);
    await sleep(1500);

    expect(events.length, 'watch events').to.be.at.least(5);
    expect(loaded).to.have.length(1);
    const rows = loaded[0].sources.filter((s) => s?.file === 'A/new.txt');
    expect(rows).to.have.length(10);
    expect(loaded[0].rows).to.equal(10 + 5 * 2 * 2);
  });
});
