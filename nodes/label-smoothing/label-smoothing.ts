import type { Node, NodeAPI, NodeDef } from 'node-red';
import { lastValueFrom, of } from 'rxjs';
import { summarize } from '../../src/dataset/dataset';
import { smooth } from '../../src/streams/augment';
import { dataSetFrom, numberSetting, onInput, status } from '../shared/runtime';
import { copyTypedArraysWhole } from '../shared/message-copy';

interface LabelSmoothingConfig extends NodeDef {
  enabled?: boolean;
  alpha?: string | number;
}

export = function (RED: NodeAPI) {
  copyTypedArraysWhole(RED);

  function LabelSmoothingNode(this: Node, config: LabelSmoothingConfig) {
    RED.nodes.createNode(this, config);
    // Placing the node in a flow asks for smoothing; the checkbox lets a user switch it off.
    const enabled = config.enabled !== false;

    onInput(this, async (msg, send) => {
      const data = dataSetFrom(msg.payload);
      const alpha = numberSetting(
        config.alpha ?? 0.1,
        'label smoothing alpha',
        (v) => v >= 0 && v < 1,
        'a number from 0 up to (not including) 1',
      );

      const out = await lastValueFrom(of(data).pipe(smooth(enabled, alpha)));
      this.status(enabled ? status.done('smoothed') : status.idle('off'));
      send({ ...msg, payload: out, summary: summarize(out) });
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      this.status({});
      done();
    });
  }

  RED.nodes.registerType('classifier-label-smoothing', LabelSmoothingNode);
};
