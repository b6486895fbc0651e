import { OperatorFunction, map } from 'rxjs';
import { DataSet, Part, PartCode, rowsOf, selectRows } from '../dataset/dataset';
import { EvaluationReport, evaluate as evaluateScores } from '../evaluate/metrics';
import { predictScores } from '../train/model';
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
 * Scores the validation and test parts with the trained model and adds the reports to the result.
 *
 *     ---e-e-R--|     ->     ---e-e-R'--|
 */
export function evaluate(): OperatorFunction<TrainedEvent, EvaluatedEvent> {
  return map((event) =>
    event.type === 'result'
      ? { ...event, evaluation: evaluateModel(event.result.model, event.data) }
      : event,
  );
}

export function evaluateModel(model: TrainResult['model'], data: DataSet): Evaluation {
  const score = (part: PartCode): PartScores | undefined => {
    const rows = rowsOf(data, part);
    if (rows.length === 0) return undefined;
    const subset = selectRows(data, rows);
    return { y: subset.y, scores: predictScores(model, subset.x, data.dim), rows: rows.length };
  };
  const report = (p: PartScores | undefined) =>
    p === undefined ? undefined : evaluateScores(p.y, p.scores, p.rows, data.labels);
  const predictions = { validation: score(Part.validation), test: score(Part.test) };
  const reports = { validation: report(predictions.validation), test: report(predictions.test) };
  const thresholds = Object.fromEntries(
    data.labels.map((label, c) => {
      const row = reports.validation?.classes[c];
      return [label, row !== undefined && row.samples > 0 ? row.threshold : 0.5];
    }),
  );
  return { reports, thresholds, predictions };
}
