import { OperatorFunction, concatMap } from 'rxjs';
import { DataSet, Part, PartCode, gatherRows, rowsOf } from '../dataset/dataset';
import { EvaluationReport, evaluateYielding } from '../evaluate/metrics';
import { predictScoresYielding } from '../train/model';
import { TrainResult } from '../train/trainer';
import { TrainedEvent } from './train';

/** The model's scores on one part, beside that part's labels, both `[rows, classes]` float32. */
export interface PartScores {
  y: Float32Array;
  scores: Float32Array;
  rows: number;
}

export interface Evaluation {
  /** Reports of the parts that have rows: validation and test. */
  reports: { validation?: EvaluationReport; test?: EvaluationReport };
  /** Per class, the F1-best threshold on the validation part (0.5 without positives there). */
  thresholds: Record<string, number>;
  /** The scores the reports were computed from, so curves can be drawn without the model. */
  predictions: { validation?: PartScores; test?: PartScores };
}

export type EvaluatedEvent =
  | Exclude<TrainedEvent, { type: 'result' }>
  | { type: 'result'; result: TrainResult; data: DataSet; evaluation: Evaluation };

/**
 * Scores the validation and test parts with the trained model and adds the reports to the result,
 * handing the event loop back as it goes.
 *
 *     ---e-e-R--|     ->     ---e-e-R'--|
 */
export function evaluate(): OperatorFunction<TrainedEvent, EvaluatedEvent> {
  return concatMap(async (event) =>
    event.type === 'result'
      ? { ...event, evaluation: await evaluateModel(event.result.model, event.data) }
      : event,
  );
}

export async function evaluateModel(
  model: TrainResult['model'],
  data: DataSet,
): Promise<Evaluation> {
  const score = async (part: PartCode): Promise<PartScores | undefined> => {
    const rows = rowsOf(data, part);
    if (rows.length === 0) return undefined;
    const { x, y } = await gatherRows(data, rows);
    return { y, scores: await predictScoresYielding(model, x, data.dim), rows: rows.length };
  };
  const report = (p: PartScores | undefined) =>
    p === undefined ? undefined : evaluateYielding(p.y, p.scores, p.rows, data.labels);
  const predictions = { validation: await score(Part.validation), test: await score(Part.test) };
  const reports = {
    validation: await report(predictions.validation),
    test: await report(predictions.test),
  };
  const thresholds = Object.fromEntries(
    data.labels.map((label, c) => {
      const row = reports.validation?.classes[c];
      return [label, row !== undefined && row.samples > 0 ? row.threshold : 0.5];
    }),
  );
  return { reports, thresholds, predictions };
}
