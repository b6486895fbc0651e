import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { lastValueFrom, of } from 'rxjs';
import { UPSAMPLING_MODES, UpsamplingMode } from '../../src/augment/upsample';
import { summarize } from '../../src/dataset/dataset';
import { upsample } from '../../src/streams/augment';
import { dataSetFrom, numberSetting, onInput, status } from '../shared/runtime';
import { copyTypedArraysWhole } from '../shared/message-copy';

interface UpsamplerConfig extends NodeDef {
  ratio?: string | number;
  mode?: string;
}

interface Upsampling {
  ratio: number;
  mode: UpsamplingMode;
}

export = function (RED: NodeAPI) {
  copyTypedArraysWhole(RED);

  function UpsamplerNode(this: Node, config: UpsamplerConfig) {
    RED.nodes.createNode(this, config);

    onInput(this, async (msg, send) => {
      const data = dataSetFrom(msg.payload);
      const { ratio, mode } = settingsOf(config, msg);

      const out = await lastValueFrom(of(data).pipe(upsample({ ratio, mode })));
      const added = out.rows - data.rows;
      if (added > 0) this.log(`upsampled (${mode}, ratio ${ratio}): ${added} rows added`);
      this.status(ratio === 0 ? status.idle('off') : status.done(`${out.rows} rows (+${added})`));
      send({ ...msg, payload: out, summary: summarize(out) });
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      this.status({});
      done();
    });
  }

  RED.nodes.registerType('classifier-upsampler', UpsamplerNode);
};

/** The node's settings, with `msg.upsampling.ratio` / `.mode` taking precedence when present. */
function settingsOf(config: UpsamplerConfig, msg: NodeMessage): Upsampling {
  const given = msg.upsampling;
  if (given !== undefined && (given === null || typeof given !== 'object')) {
    throw new Error(`msg.upsampling: expected { ratio, mode }, got ${typeof given}`);
  }
  const override = (given ?? {}) as { ratio?: unknown; mode?: unknown };
  const fromMsg = override.ratio !== undefined;
  const ratio = numberSetting(
    fromMsg ? override.ratio : (config.ratio ?? 0),
    fromMsg ? 'msg.upsampling.ratio' : 'upsampling ratio',
    (v) => v >= 0 && v <= 1,
    'a number from 0 to 1',
  );
  const mode = override.mode ?? (config.mode || 'repeat');
  if (!(UPSAMPLING_MODES as readonly unknown[]).includes(mode)) {
    const field = override.mode !== undefined ? 'msg.upsampling.mode' : 'upsampling mode';
    throw new Error(
      `${field}: expected one of ${UPSAMPLING_MODES.join(', ')}, got "${String(mode)}"`,
    );
  }
  return { ratio, mode: mode as UpsamplingMode };
}
