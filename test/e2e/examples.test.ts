import { expect } from 'chai';
import { existsSync, readFileSync, readdirSync } from 'fs';
import { isAbsolute, join } from 'path';
import { DebugMessage, FlowNode, NodeRedProcess } from './node-red-process';

const EXAMPLES = join(__dirname, '..', '..', 'examples', 'flows');

/** Settings that name something that must exist before the flow runs. */
const INPUT_PATHS: Record<string, string[]> = {
  'classifier-loader': ['path', 'testData'],
  'classifier-predict': ['modelDir'],
  'classifier-evaluator': ['modelDir'],
  watch: ['files'],
};

/** What a particular example must have produced, beyond reaching its debug nodes. */
const CHECKS: Record<string, (messages: DebugMessage[]) => void> = {
  'predict.json': (messages) => {
    const msg = JSON.parse(messages[0].msg) as { payload: { label: string; score: number }[] };
    expect(msg.payload[0].label).to.equal('Fictus cantor_Singing Fiction Finch');
  },
  'train-from-a-folder.json': (messages) => {
    const macro = JSON.parse(messages[0].msg) as { averagePrecision: number };
    expect(macro.averagePrecision).to.be.greaterThan(0.9);
  },
  'train-from-recordings.json': (messages) => {
    const macro = JSON.parse(messages[0].msg) as { averagePrecision: number; samples: number };
    // 4 species x 4 clips: one clip of each held out for validation.
    expect(macro.samples).to.equal(4);
    expect(macro.averagePrecision).to.be.greaterThan(0.9);
  },
};

function examples(): { name: string; flow: FlowNode[] }[] {
  return readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => ({
      name,
      flow: JSON.parse(readFileSync(join(EXAMPLES, name), 'utf8')) as FlowNode[],
    }));
}

/**
 * Every example flow, deployed into a real Node-RED started as its own process from a fresh
 * user directory with this package installed, triggered through its inject buttons.
 */
describe('example flows in a running Node-RED', function () {
  this.timeout(10 * 60 * 1000);
  const red = new NodeRedProcess();

  before(async () => {
    await red.start();
  });
  after(async () => {
    await red.stop();
  });

  it('should load every node type of the package', async () => {
    const res = await fetch(`${red.url}/nodes`, { headers: { Accept: 'application/json' } });
    const sets = (await res.json()) as { module: string; types: string[]; err?: string }[];
    const ours = sets.filter((s) => s.module === '@seedlab/node-red-custom-classifier');
    expect(ours.map((s) => s.err).filter(Boolean)).to.deep.equal([]);
    expect(ours.flatMap((s) => s.types).sort()).to.deep.equal([
      'classifier-evaluator',
      'classifier-label-smoothing',
      'classifier-loader',
      'classifier-mixup',
      'classifier-predict',
      'classifier-trainer',
      'classifier-upsampler',
    ]);
  });

  for (const { name, flow } of examples()) {
    describe(name, () => {
      it('should have a comment node and refer to no path missing on a fresh install', () => {
        expect(flow.some((n) => n.type === 'comment')).to.equal(true);
        for (const node of flow) {
          for (const key of INPUT_PATHS[node.type] ?? []) {
            const value = node[key];
            if (typeof value !== 'string' || value === '' || node[`${key}Type`] === 'msg') continue;
            const path = isAbsolute(value) ? value : join(red.userDir, value);
            expect(existsSync(path), `${node.type}.${key} = ${value}`).to.equal(true);
          }
        }
      });

      it('should deploy, run when triggered and deliver to every active debug node', async () => {
        const errorsBefore = red.log.filter((line) => line.includes('[error]')).length;
        await red.deploy(flow);
        const deployed = await red.flows();
        expect(deployed.map((n) => n.id).sort()).to.deep.equal(flow.map((n) => n.id).sort());

        const start = red.debug.length;
        for (const inject of flow.filter((n) => n.type === 'inject')) await red.inject(inject.id);

        const debugIds = flow.filter((n) => n.type === 'debug' && n.active).map((n) => n.id);
        const seen = await red.waitFor(
          () => {
            const got = new Set(red.debug.slice(start).map((m) => m.id));
            return debugIds.every((id) => got.has(id)) ? got : undefined;
          },
          300,
          `messages at debug nodes ${debugIds.join(', ')} of ${name}`,
        );
        expect([...seen]).to.include.members(debugIds);

        for (const trainer of flow.filter((n) => n.type === 'classifier-trainer')) {
          let dir = join(red.userDir, String(trainer.modelDir));
          if (trainer.saveAs === 'store') {
            const current = JSON.parse(readFileSync(join(dir, 'current.json'), 'utf8'));
            dir = join(dir, 'versions', current.version as string);
          }
          for (const file of ['model.json', 'weights.bin', 'labels.txt', 'evaluation.json']) {
            expect(existsSync(join(dir, file)), `${dir}/${file}`).to.equal(true);
          }
        }
        CHECKS[name]?.(red.debug.slice(start).filter((m) => debugIds.includes(m.id)));
        const errors = red.log.filter((line) => line.includes('[error]')).slice(errorsBefore);
        expect(errors).to.deep.equal([]);
      });
    });
  }
});
