import { expect } from 'chai';
import * as nodeRedUtil from '@node-red/util';
import { copyTypedArraysWhole, holdsTypedArray, plainCopy } from '../nodes/shared/message-copy';
import { countTurns } from './helpers';

/** Node-RED's runtime hooks, with the calls its router makes that its types leave out. */
const hooks = nodeRedUtil.hooks as typeof nodeRedUtil.hooks & {
  trigger(id: string, payload: unknown, done: (err?: Error) => void): void;
  clear(): void;
};
const util = nodeRedUtil.util;

/** What Node-RED's router hands the onSend hook for each message a node sends on a wire. */
interface SendEvent {
  msg: Record<string, unknown>;
  cloneMessage: boolean;
  source?: { id: string };
}

/** Runs the onSend hooks on a node's send events, as Node-RED's flow does before routing them. */
function send(events: SendEvent[]): Promise<SendEvent[]> {
  return new Promise((resolve, reject) =>
    hooks.trigger('onSend', events, (err?: Error) => (err ? reject(err) : resolve(events))),
  );
}

/** One message sent on an extra wire, through the onSend hooks. */
async function route(event: SendEvent): Promise<SendEvent> {
  return (await send([event]))[0];
}

describe('message copy for data sets on extra wires', function () {
  afterEach(() => hooks.clear());

  describe('plainCopy', function () {
    it('should copy typed arrays into new buffers with the same values', function () {
      const x = Float32Array.of(0.5, -1.25, 3);
      const copy = plainCopy({ x, dim: 3 }, new Map()) as { x: Float32Array; dim: number };

      expect(copy.x).to.be.instanceOf(Float32Array);
      expect(copy.x).to.not.equal(x);
      expect(copy.x.buffer).to.not.equal(x.buffer);
      expect(Array.from(copy.x)).to.deep.equal([0.5, -1.25, 3]);
      copy.x[0] = 9;
      expect(x[0], 'the original is untouched').to.equal(0.5);
    });

    it('should copy a subarray as its own elements only', function () {
      const whole = Float32Array.of(1, 2, 3, 4, 5);
      const copy = plainCopy(whole.subarray(1, 3), new Map()) as Float32Array;
      expect(Array.from(copy)).to.deep.equal([2, 3]);
      expect(copy.buffer.byteLength).to.equal(8);
    });

    it('should keep shared and circular references shared', function () {
      const labels = ['a', 'b'];
      const value: Record<string, unknown> = { labels, again: labels };
      value.self = value;
      const copy = plainCopy(value, new Map()) as Record<string, unknown>;

      expect(copy.labels).to.not.equal(labels);
      expect(copy.again).to.equal(copy.labels);
      expect(copy.self).to.equal(copy);
    });

    it('should give up on anything but plain data', function () {
      for (const odd of [new Date(0), Buffer.from('ab'), new Map(), () => 1, new (class {})()]) {
        expect(plainCopy({ nested: [odd] }, new Map())).to.be.a('symbol');
      }
    });
  });

  describe('holdsTypedArray', function () {
    it('should find a typed array within the depth and not below it', function () {
      const deep = { a: { b: { c: Int32Array.of(1) } } };
      expect(holdsTypedArray(deep, 3)).to.equal(true);
      expect(holdsTypedArray(deep, 2)).to.equal(false);
      expect(holdsTypedArray({ text: 'x', list: [1, 2] }, 4)).to.equal(false);
      expect(holdsTypedArray(Buffer.from('ab'), 4), 'a Buffer is left to Node-RED').to.equal(false);
    });
  });

  describe('the onSend hook in Node-RED hooks', function () {
    beforeEach(() => copyTypedArraysWhole({ hooks, util } as never));

    it('should hand on a copied data set and tell Node-RED not to copy it again', async function () {
      const x = Float32Array.of(1, 2, 3, 4);
      const msg = { _msgid: 'm1', topic: 'data', payload: { x, dim: 2, labels: ['a'] } };
      const event = await route({ msg, cloneMessage: true });

      expect(event.cloneMessage).to.equal(false);
      expect(event.msg).to.not.equal(msg);
      expect(event.msg.topic).to.equal('data');
      expect(event.msg._msgid).to.equal('m1');
      const payload = event.msg.payload as { x: Float32Array; dim: number; labels: string[] };
      expect(payload.x).to.not.equal(x);
      expect(Array.from(payload.x)).to.deep.equal([1, 2, 3, 4]);
      expect(payload.labels).to.deep.equal(['a']);
      expect(payload.labels).to.not.equal(msg.payload.labels);
    });

    it('should leave the first wire, plain messages and odd payloads to Node-RED', async function () {
      const first = { payload: { x: Float32Array.of(1) } };
      expect((await route({ msg: first, cloneMessage: false })).msg).to.equal(first);

      const plain = { payload: { rows: 3 } };
      const plainEvent = await route({ msg: plain, cloneMessage: true });
      expect(plainEvent.cloneMessage).to.equal(true);
      expect(plainEvent.msg).to.equal(plain);

      const odd = { payload: { x: Float32Array.of(1), when: new Date(0) } };
      const oddEvent = await route({ msg: odd, cloneMessage: true });
      expect(oddEvent.cloneMessage).to.equal(true);
      expect(oddEvent.msg).to.equal(odd);
    });

    it('should copy 40 MB a slice at a time, the event loop turning between slices', async function () {
      // 10 Mi float32 values = 40 MiB: slices of 16 MiB end at 4 Mi, 8 Mi and 10 Mi values.
      const x = Float32Array.from({ length: 10 * 1024 * 1024 }, (_, i) => i % 4093);
      const msg = { payload: { x, labels: ['a', 'b'] } };
      const first: SendEvent = { msg, cloneMessage: false };
      const second: SendEvent = { msg, cloneMessage: true };
      const turns = countTurns();
      const [a, b] = await send([first, second]);
      expect(turns.stop()).to.be.at.least(3);
      expect(a.msg).to.equal(msg);
      expect(b.cloneMessage).to.equal(false);
      const copy = (b.msg.payload as { x: Float32Array }).x;
      expect(copy).to.not.equal(x);
      for (const i of [0, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, x.length - 1]) {
        expect(copy[i]).to.equal(i % 4093);
      }
    });

    it("should keep a node's later messages behind the one it copies, not other nodes'", async function () {
      const x = new Float32Array(10 * 1024 * 1024);
      const big = { payload: { x } };
      const routed: string[] = [];
      const sending = (name: string, id: string, events: SendEvent[]) =>
        send(events.map((e) => ({ ...e, source: { id } }))).then(() => routed.push(name));

      await Promise.all([
        sending('big from A', 'A', [
          { msg: big, cloneMessage: false },
          { msg: big, cloneMessage: true },
        ]),
        sending('plain from A', 'A', [{ msg: { payload: 1 }, cloneMessage: false }]),
        sending('plain from B', 'B', [{ msg: { payload: 2 }, cloneMessage: false }]),
      ]);
      expect(routed.indexOf('plain from A')).to.be.above(routed.indexOf('big from A'));
      expect(routed[0]).to.equal('plain from B');
    });

    it('should leave a message it cannot copy to Node-RED and send the others', async function () {
      // The getter sits below the typed array's level: found while copying, not while looking.
      const meta = {};
      const payload = { x: Float32Array.of(1, 2), meta };
      Object.defineProperty(meta, 'broken', {
        enumerable: true,
        get() {
          throw new Error('no copy of me');
        },
      });
      const msg = { payload };
      const [first, second] = await send([
        { msg, cloneMessage: false, source: { id: 'C' } },
        { msg, cloneMessage: true, source: { id: 'C' } },
      ]);
      expect(first.msg).to.equal(msg);
      expect(second.msg).to.equal(msg);
      expect(second.cloneMessage, 'Node-RED is still to copy it').to.equal(true);
    });

    it('should be added once however many nodes ask for it', function () {
      copyTypedArraysWhole({ hooks, util } as never);
      copyTypedArraysWhole({ hooks, util } as never);
      expect(hooks.has('onSend.custom-classifier-copy')).to.equal(true);
      hooks.remove('onSend.custom-classifier-copy');
      expect(hooks.has('onSend.custom-classifier-copy'), 'no second copy left').to.equal(false);
    });
  });
});
