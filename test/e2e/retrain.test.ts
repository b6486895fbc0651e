import { expect } from 'chai';
import { createHash } from 'crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'fs';
import { AddressInfo, Server, createServer } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { mkdtempSync } from 'fs';
import { Aedes } from 'aedes';
import { connect } from 'mqtt';
import { readSignal, DEFAULT_SIGNAL } from '../../src/audio/decode';
import { cropSegments } from '../../src/audio/segments';
import { spectrogramStats } from '../../src/audio/spectrogram-stats';
import { writeSyntheticRecordings } from '../../src/audio/synthetic';
import { DEMO_CLASSES } from '../../src/demo';
import { DebugMessage, FlowNode, NodeRedProcess } from './node-red-process';

const [WHISTLE, CHIRP, TRILL, TWO_NOTE] = DEMO_CLASSES;
const HOLDOUT = 0.2;

/** Whether the loader's test holdout takes this file (path relative to the training folder). */
function heldOut(relative: string): boolean {
  return createHash('sha1').update(relative).digest().readUInt32BE(0) / 2 ** 32 < HOLDOUT;
}

/**
 * Synthetic clips of every call type, written once: 12 clips of 6 s per class, from which the
 * tests copy into the watched recorder folder.
 */
async function clipSource(dir: string): Promise<string> {
  await writeSyntheticRecordings(dir, { seed: 5, clipsPerClass: 12, seconds: 6 });
  return dir;
}

/**
 * Copies clip `n` of class `from` into `to/<name>`, the name chosen so that the loader holds the
 * file out for testing, or not, as `test` says.
 */
function copyClip(
  source: string,
  recorder: string,
  from: string,
  to: string,
  n: number,
  test = false,
): string {
  const clip = join(source, from, `clip${String(n).padStart(2, '0')}.wav`);
  for (let k = 0; ; k++) {
    const name = `${to}/${from.split(' ')[0]}-${n}-${k}.wav`;
    if (heldOut(name) === test) {
      mkdirSync(join(recorder, to), { recursive: true });
      cpSync(clip, join(recorder, name));
      return name;
    }
  }
}

/** The built-in embedding of a clip's middle 3 s, as an inject node's JSON payload. */
async function embeddingOf(path: string): Promise<number[]> {
  const signal = await readSignal(path, DEFAULT_SIGNAL);
  const [segment] = cropSegments(signal, 48000, { mode: 'center', overlap: 0 });
  return Array.from((await spectrogramStats().embed([segment.samples])).x);
}

/**
 * watch (or mqtt in) -> loader (settles 1 s, holds out test files by path) -> trainer (versions in
 * a model store) -> debug `trained`; inject `score` -> predict (following the store) -> debug
 * `scored`; inject `retrain` -> loader.
 */
function retrainFlow(options: {
  recorder: string;
  store: string;
  embedding: number[];
  trigger: FlowNode;
}): FlowNode[] {
  const z = 'retrain-tab';
  return [
    { id: z, type: 'tab', label: 'retrain' },
    { ...options.trigger, z, wires: [['loader']] },
    { id: 'retrain', type: 'inject', z, props: [], repeat: '', once: false, wires: [['loader']] },
    {
      id: 'loader',
      type: 'classifier-loader',
      z,
      path: options.recorder,
      pathType: 'str',
      settle: 1,
      holdout: HOLDOUT,
      validationSplit: 0.25,
      seed: 1,
      wires: [['trainer']],
    },
    {
      id: 'trainer',
      type: 'classifier-trainer',
      z,
      epochs: 50,
      learningRate: 0.01,
      saveAs: 'store',
      keep: 10,
      modelDir: options.store,
      modelDirType: 'str',
      busy: 'queue',
      queueLength: 1,
      wires: [['trained'], []],
    },
    debugNode('trained', z),
    {
      id: 'score',
      type: 'inject',
      z,
      props: [{ p: 'payload' }],
      payload: JSON.stringify(options.embedding),
      payloadType: 'json',
      repeat: '',
      once: false,
      wires: [['predict']],
    },
    {
      id: 'predict',
      type: 'classifier-predict',
      z,
      modelDir: options.store,
      modelDirType: 'str',
      thresholdMode: 'fixed',
      threshold: 0,
      wires: [['scored']],
    },
    debugNode('scored', z),
  ];
}

function debugNode(id: string, z: string): FlowNode {
  return {
    id,
    type: 'debug',
    z,
    active: true,
    tosidebar: true,
    console: false,
    complete: 'true',
    targetType: 'full',
    wires: [],
  };
}

interface Trained {
  payload: { version: string; promoted: boolean; labels: string[]; promotion: { reason: string } };
}

interface Scored {
  model: { version: string; labels: string[] };
}

function parsed<T>(messages: DebugMessage[], id: string): T[] {
  return messages.filter((m) => m.id === id).map((m) => JSON.parse(m.msg) as T);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Retraining from recorder and sensor events in a real Node-RED process: clips copied into a
 * watched folder, or an MQTT message from a broker on a loopback port, each burst one retraining;
 * a new version current only when it scores at least as well on the same held-out files; predict
 * following the current version without losing or repeating a message; a kill while saving.
 */
describe('retraining from events in a running Node-RED', function () {
  this.timeout(10 * 60 * 1000);
  let work: string;
  let source: string;
  let embedding: number[];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'retrain e2e '));
    source = await clipSource(join(work, 'clips'));
    embedding = await embeddingOf(join(source, WHISTLE, 'clip12.wav'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  /** Clips 1-6 of a species to train on and clips 7 and 8 held out for testing. */
  function addSpecies(recorder: string, species: string): void {
    for (let n = 1; n <= 8; n++) copyClip(source, recorder, species, species, n, n > 6);
  }

  /** A recorder folder with whistle, chirp, trill and noise. */
  function recorderWithThreeSpecies(name: string): string {
    const recorder = join(work, name);
    for (const species of [WHISTLE, CHIRP, TRILL, 'Noise']) addSpecies(recorder, species);
    return recorder;
  }

  describe('a watched folder', () => {
    const red = new NodeRedProcess();
    after(() => red.stop());

    it('should retrain once per burst, promote only what is not worse, and switch predict over', async () => {
      const recorder = recorderWithThreeSpecies('recorder');
      const store = join(work, 'watched store');
      await red.start();
      const trigger = { id: 'watcher', type: 'watch', files: recorder, recursive: true };
      await red.deploy(retrainFlow({ recorder, store, embedding, trigger }));
      const trained = () => parsed<Trained>(red.debug, 'trained');
      const untilTrained = (n: number) =>
        red.waitFor(() => trained().length >= n, 120, `${n} trainings`);

      // First version: trained on clean clips, current because the store was empty.
      await red.inject('retrain');
      await untilTrained(1);
      expect(trained()[0].payload).to.include({ version: 'v0001', promoted: true });

      // A worse burst: noise clips filed under every species, more than each one's own clips.
      const swapped: string[] = [];
      for (let n = 6; n <= 12; n++) {
        for (const species of [WHISTLE, CHIRP, TRILL]) {
          swapped.push(copyClip(source, recorder, 'Noise', species, n));
        }
        await sleep(30);
      }
      await untilTrained(2);
      await sleep(3000);
      expect(trained(), 'one retraining for the burst').to.have.length(2);
      const worse = trained()[1].payload;
      expect(worse, worse.promotion.reason).to.include({ version: 'v0002', promoted: false });
      expect(JSON.parse(readFileSync(join(store, 'current.json'), 'utf8')).version).to.equal(
        'v0001',
      );

      // Predict scores with v0001 while the next burst retrains: the misfiled clips removed and a
      // fourth species added, so v0003 has other classes and becomes current.
      const scoredBefore = parsed<Scored>(red.debug, 'scored').length;
      for (const name of swapped) rmSync(join(recorder, name));
      addSpecies(recorder, TWO_NOTE);
      const scoredBy = (version: string) =>
        parsed<Scored>(red.debug, 'scored')
          .slice(scoredBefore)
          .some((m) => m.model.version === version);
      let sent = 0;
      // One message every 150 ms until one has been scored by the new version, then 5 more.
      while (!scoredBy('v0003')) {
        await red.inject('score');
        sent++;
        await sleep(150);
        if (sent > 800) throw new Error('predict never switched to v0003');
      }
      for (let extra = 0; extra < 5; extra++, sent++) await red.inject('score');
      await red.waitFor(
        () => parsed<Scored>(red.debug, 'scored').length - scoredBefore >= sent,
        60,
        `${sent} scored messages`,
      );
      await sleep(1000);

      const third = trained()[2].payload;
      expect(third, third.promotion.reason).to.include({ version: 'v0003', promoted: true });
      expect(third.labels).to.have.length(4);
      const scored = parsed<Scored>(red.debug, 'scored').slice(scoredBefore);
      expect(scored, 'one output per message').to.have.length(sent);
      const versions = scored.map((s) => s.model.version);
      expect(new Set(versions)).to.deep.equal(new Set(['v0001', 'v0003']));
      // Once v0003 scores, v0001 never does again; its outputs carry four labels.
      const first = versions.indexOf('v0003');
      expect(versions.slice(first).every((v) => v === 'v0003')).to.equal(true);
      expect(scored[scored.length - 1].model.labels).to.include(TWO_NOTE);
      expect(scored[0].model.labels).to.not.include(TWO_NOTE);
      process.stdout.write(
        `      ${sent} messages scored across the switch: ${first} by v0001, ` +
          `${sent - first} by v0003\n`,
      );
    });
  });

  describe('an MQTT message', () => {
    const red = new NodeRedProcess();
    let broker: Aedes;
    let server: Server;

    before(async () => {
      broker = await Aedes.createBroker();
      server = createServer(broker.handle);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      await red.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    });

    it("should retrain once per burst of sensor messages, through Node-RED's mqtt in node", async () => {
      const port = (server.address() as AddressInfo).port;
      const recorder = recorderWithThreeSpecies('mqtt recorder');
      const store = join(work, 'mqtt store');
      await red.start();
      const sensor = {
        id: 'sensor',
        type: 'mqtt in',
        topic: 'recorder/clips',
        qos: '1',
        datatype: 'utf8',
        broker: 'mqtt',
        nl: false,
        rap: true,
        rh: 0,
        inputs: 0,
      };
      const flow = retrainFlow({ recorder, store, embedding, trigger: sensor });
      flow.push({
        id: 'mqtt',
        type: 'mqtt-broker',
        name: 'loopback broker',
        broker: '127.0.0.1',
        port: String(port),
        clientid: '',
        autoConnect: true,
        usetls: false,
        protocolVersion: '4',
        keepalive: '60',
        cleansession: true,
      });
      await red.deploy(flow);
      await red.waitFor(
        () => red.log.some((line) => /Connected to broker/.test(line)),
        30,
        'the mqtt in node to connect',
      );
      const client = connect(`mqtt://127.0.0.1:${port}`);
      await new Promise((resolve) => client.once('connect', resolve));
      const trained = () => parsed<Trained>(red.debug, 'trained');

      for (let i = 0; i < 3; i++) client.publish('recorder/clips', `new clip ${i}`, { qos: 1 });
      await red.waitFor(() => trained().length >= 1, 120, 'the first training');
      await sleep(3000);
      expect(trained(), 'one training for three messages').to.have.length(1);

      for (let n = 9; n <= 11; n++) copyClip(source, recorder, TRILL, TRILL, n);
      for (let i = 0; i < 3; i++) client.publish('recorder/clips', `trill ${i}`, { qos: 1 });
      await red.waitFor(() => trained().length >= 2, 120, 'the second training');
      await sleep(3000);
      expect(trained()).to.have.length(2);
      expect(trained().map((t) => t.payload.version)).to.deep.equal(['v0001', 'v0002']);
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    });
  });

  describe('a kill while a version is being saved', () => {
    const red = new NodeRedProcess();
    after(() => red.stop());

    it('should restart with the previous good version current and no half version', async () => {
      const recorder = recorderWithThreeSpecies('kill recorder');
      const store = join(work, 'kill store');
      const trigger = { id: 'retrain-later', type: 'inject', props: [], repeat: '', once: false };
      const flow = retrainFlow({ recorder, store, embedding, trigger });
      await red.start();
      await red.deploy(flow);
      await red.inject('retrain');
      await red.waitFor(() => parsed<Trained>(red.debug, 'trained').length >= 1, 120, 'v0001');
      await red.kill();

      // Saves now pause half-way (weights written, labels not) for 60 s: the kill lands there.
      await red.start({ CUSTOM_CLASSIFIER_TEST_PAUSE_SAVE_MS: '60000' });
      for (let n = 9; n <= 11; n++) copyClip(source, recorder, TRILL, TRILL, n);
      await red.inject('retrain');
      const versions = join(store, 'versions');
      const saving = await red.waitFor(
        () =>
          readdirSync(versions).find(
            (name) => name.startsWith('.') && existsSync(join(versions, name, 'model.json')),
          ),
        120,
        'a save half-way',
      );
      await red.kill();
      expect(readdirSync(versions).filter((v) => !v.startsWith('.'))).to.deep.equal(['v0001']);
      expect(existsSync(join(versions, saving))).to.equal(true);

      await red.start();
      const before = red.debug.length;
      await red.inject('score');
      const scored = await red.waitFor(
        () => parsed<Scored>(red.debug.slice(before), 'scored')[0],
        60,
        'a score after the restart',
      );
      expect(scored.model.version).to.equal('v0001');
      expect(JSON.parse(readFileSync(join(store, 'current.json'), 'utf8')).version).to.equal(
        'v0001',
      );
      process.stdout.write(`      killed during the save of ${saving}; v0001 stayed current\n`);
    });
  });
});
