import type { Node, NodeAPI, NodeDef } from 'node-red';
import { lastValueFrom, of } from 'rxjs';
import { mixupCount } from '../../src/augment/mixup';
import { summarize } from '../../src/dataset/dataset';
import { mixup } from '../../src/streams/augment';
import { dataSetFrom, onInput, status } from '../shared/runtime';
import { copyTypedArraysWhole } from '../shared/message-copy';

interface MixupConfig extends NodeDef {
  enabled?: boolean;
}

export = function (RED: NodeAPI) {
  copyTypedArraysWhole(RED);

  function MixupNode(this: Node, config: MixupConfig) {
    RED.nodes.createNode(this, config);
    // Placing the node in a flow asks for mixup; the checkbox lets a user switch it off for a run.
    const enabled = config.enabled !== false;

    onInput(this, async (msg, send) => {
      const data = dataSetFrom(msg.payload);

      const out = await lastValueFrom(of(data).pipe(mixup(enabled)));
      this.status(enabled ? status.done(`mixed ${mixupCount(data)}`) : status.idle('off'));
      send({ ...msg, payload: out, summary: summarize(out) });
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      this.status({});
      done();
    });
  }

  RED.nodes.registerType('classifier-mixup', MixupNode);
};
