import { Observable, OperatorFunction, concatMap } from 'rxjs';
import { DataSet, summarize } from '../dataset/dataset';
import { PACKAGE } from '../package-info';
import { ModelRecord, Provenance, saveModelDirectory } from '../store/model-directory';
import { backendName } from '../train/backend';
import { TrainResult } from '../train/trainer';
import { EvaluatedEvent, Evaluation } from './evaluate';

export type SavedEvent =
  | Exclude<EvaluatedEvent, { type: 'result' }>
  | {
      type: 'result';
      result: TrainResult;
      data: DataSet;
      evaluation: Evaluation;
      /** Where the model directory was written. */
      dir: string;
      provenance: Provenance;
    };

/**
 * Saves each evaluated result as a model directory at `dir` (written aside, then renamed into
 * place). `hyperparameters` are every setting of the run, written as `Parameter,Value` rows.
 * Unsubscribing before the rename leaves `dir` as it was.
 *
 *     ---e-e-R--|     ->     ---e-e-----S--|
 */
export function save(
  dir: string,
  hyperparameters: Readonly<Record<string, string | number | boolean>>,
): OperatorFunction<EvaluatedEvent, SavedEvent> {
  return concatMap((event) => {
    if (event.type !== 'result') return [event];
    const record = recordOf(event, hyperparameters);
    const { provenance } = record;
    return new Observable<SavedEvent>((subscriber) => {
      const abort = new AbortController();
      saveModelDirectory(dir, record, { signal: abort.signal }).then(
        () => {
          subscriber.next({ ...event, dir, provenance });
          subscriber.complete();
        },
        (err: unknown) => subscriber.error(err),
      );
      return () => abort.abort();
    });
  });
}

/** What a model directory holds for an evaluated result. */
export function recordOf(
  event: Extract<EvaluatedEvent, { type: 'result' }>,
  hyperparameters: Readonly<Record<string, string | number | boolean>>,
): ModelRecord {
  return {
    model: event.result.model,
    labels: event.data.labels,
    hyperparameters,
    samples: summarize(event.data),
    history: event.result.history,
    evaluation: event.evaluation.reports,
    provenance: provenanceOf(event.result, event.data, event.evaluation),
  };
}

function provenanceOf(result: TrainResult, data: DataSet, evaluation: Evaluation): Provenance {
  return {
    package: PACKAGE.name,
    packageVersion: PACKAGE.version,
    backend: backendName(),
    createdAt: new Date().toISOString(),
    embedding: { ...data.embedding, dim: data.dim },
    seed: data.seed,
    labels: [...data.labels],
    thresholds: evaluation.thresholds,
    preprocessing: 'none',
    stopReason: result.stopReason,
    bestEpoch: result.bestEpoch,
  };
}
