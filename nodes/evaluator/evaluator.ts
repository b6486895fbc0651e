import { mkdir, writeFile } from 'fs/promises';
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { dirname, join } from 'path';
import { DataSet } from '../../src/dataset/dataset';
import { evaluateYielding } from '../../src/evaluate/metrics';
import {
  CHART_FILES,
  confusionSvg,
  precisionRecallSvg,
  trainingCurvesSvg,
} from '../../src/evaluate/plots';
import { reportToCsv, reportToJson } from '../../src/evaluate/report';
import { PartChoice, loadPredictor, scoreDataSet } from '../../src/streams/predict';
import { EpochStats } from '../../src/train/trainer';
import { backendFor, dataSetFrom, onInput, resolvePath, status } from '../shared/runtime';
import { copyTypedArraysWhole } from '../shared/message-copy';

interface EvaluatorConfig extends NodeDef {
  part: string;
  modelDir: string;
  modelDirType: string;
  csvFile: string;
  plotFolder: string;
  charts: boolean | string;
}

const PARTS = ['auto', 'validation', 'test'] as const;
type PartSetting = (typeof PARTS)[number];

/** Labels and scores of the rows to evaluate, from a trainer result or a scored data set. */
interface Scored {
  part: 'validation' | 'test' | 'all';
  y: Float32Array;
  scores: Float32Array;
  rows: number;
  labels: string[];
  history?: EpochStats[];
}

/** SVG documents of the charts, as sent in `msg.svg`. */
interface Pictures {
  curves?: string;
  precisionRecall?: string;
  confusion?: string;
}

const PICTURE_FILES: Record<keyof Pictures, string> = CHART_FILES;

export = function (RED: NodeAPI) {
  copyTypedArraysWhole(RED);

  function EvaluatorNode(this: Node, config: EvaluatorConfig) {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: Node, config: EvaluatorConfig): void {
    // On unless switched off, as in the editor's defaults.
    const charts = config.charts !== false && config.charts !== 'false';

    onInput(node, async (msg, send) => {
      const part = partSetting(config.part);
      node.status(status.working('evaluating'));

      const scored = isTrainerResult(msg.payload)
        ? fromTrainerResult(msg.payload, part)
        : await fromDataSet(dataSetFrom(msg.payload), modelDirOf(msg), part);
      const report = await evaluateYielding(scored.y, scored.scores, scored.rows, scored.labels);

      if (config.csvFile) {
        const path = resolvePath(RED, node, config.csvFile);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, reportToCsv(report));
        node.log(`evaluation of the ${scored.part} rows written: ${path}`);
      }
      const pictures = charts || config.plotFolder ? await draw(scored) : undefined;
      if (pictures !== undefined && config.plotFolder) {
        const folder = resolvePath(RED, node, config.plotFolder);
        await writePictures(folder, pictures);
        node.log(`charts written: ${folder}`);
      }

      msg.payload = { part: scored.part, ...reportToJson(report) };
      if (charts) msg.svg = pictures;
      send(msg);
      const ap = report.macro.averagePrecision;
      node.status(status.done(`macro AP ${ap === undefined ? '-' : ap.toFixed(3)}`));
    });

    function modelDirOf(msg: NodeMessage): string {
      const value: unknown = RED.util.evaluateNodeProperty(
        config.modelDir ?? '',
        config.modelDirType || 'str',
        node,
        msg,
      );
      if (typeof value !== 'string' || value === '') {
        const where =
          config.modelDirType === 'msg' ? `msg.${config.modelDir}` : 'the model directory setting';
        throw new Error(
          `${where}: expected the path of a model directory to score the data set with, ` +
            `got ${value === '' ? 'nothing' : typeof value}`,
        );
      }
      return resolvePath(RED, node, value);
    }

    async function fromDataSet(data: DataSet, dir: string, part: PartSetting): Promise<Scored> {
      await backendFor(node);
      const predictor = await loadPredictor(dir);
      try {
        return scoreDataSet(predictor, data, part as PartChoice, 'msg.payload');
      } finally {
        predictor.model.dispose();
      }
    }
  }

  RED.nodes.registerType('classifier-evaluator', EvaluatorNode);
};

function partSetting(value: string | undefined): PartSetting {
  const part = value || 'auto';
  if (!(PARTS as readonly string[]).includes(part)) {
    throw new Error(`part: expected one of ${PARTS.join(', ')}, got "${part}"`);
  }
  return part as PartSetting;
}

/** The shape of the part of a trainer result the evaluator reads. */
interface TrainerResult {
  labels: string[];
  history?: EpochStats[];
  predictions: Partial<Record<'validation' | 'test', Predictions>>;
}

interface Predictions {
  y: ArrayLike<number>;
  scores: ArrayLike<number>;
  rows: number;
}

function isTrainerResult(payload: unknown): payload is TrainerResult {
  if (payload === null || typeof payload !== 'object') return false;
  const p = payload as Partial<TrainerResult>;
  return typeof p.predictions === 'object' && p.predictions !== null;
}

function fromTrainerResult(result: TrainerResult, setting: PartSetting): Scored {
  if (!Array.isArray(result.labels) || result.labels.length === 0) {
    throw new Error('msg.payload.labels: expected the class names of the trained model');
  }
  const available = (['test', 'validation'] as const).filter(
    (p) => result.predictions[p] !== undefined && result.predictions[p] !== null,
  );
  const part = setting === 'auto' ? available[0] : setting;
  if (part === undefined || !available.includes(part)) {
    throw new Error(
      `msg.payload.predictions: no ${part ?? 'test or validation'} scores in the trainer result ` +
        `(it has ${available.length === 0 ? 'none' : available.join(', ')})`,
    );
  }

  const where = `msg.payload.predictions.${part}`;
  const { y, scores, rows } = result.predictions[part] as Predictions;
  const expected = rows * result.labels.length;
  if (!Number.isInteger(rows) || rows <= 0) {
    throw new Error(`${where}.rows: expected a whole number above 0, got ${String(rows)}`);
  }
  for (const [name, values] of [
    ['y', y],
    ['scores', scores],
  ] as const) {
    if (values?.length !== expected) {
      throw new Error(
        `${where}.${name}: expected ${rows} rows x ${result.labels.length} classes = ` +
          `${expected} values, got ${values?.length ?? 'none'}`,
      );
    }
  }
  return {
    part,
    y: Float32Array.from(y),
    scores: Float32Array.from(scores),
    rows,
    labels: result.labels.map(String),
    history: Array.isArray(result.history) ? result.history : undefined,
  };
}

async function draw(scored: Scored): Promise<Pictures> {
  const { y, scores, rows, labels, history } = scored;
  return {
    curves:
      history !== undefined && history.length > 0 ? await trainingCurvesSvg(history) : undefined,
    precisionRecall: await precisionRecallSvg(y, scores, rows, labels),
    confusion: await confusionSvg(y, scores, rows, labels),
  };
}

async function writePictures(folder: string, pictures: Pictures): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (const key of Object.keys(PICTURE_FILES) as (keyof Pictures)[]) {
    const svg = pictures[key];
    if (svg !== undefined) await writeFile(join(folder, PICTURE_FILES[key]), svg);
  }
}
