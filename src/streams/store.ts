import { Observable, OperatorFunction, concatMap } from 'rxjs';
import { Part, rowsOf, selectRows } from '../dataset/dataset';
import { ClassMetrics, evaluate as evaluateScores } from '../evaluate/metrics';
import { loadModelDirectory, saveModelDirectory } from '../store/model-directory';
import { ModelStore } from '../store/model-store';
import { predictScores } from '../train/model';
import { EvaluatedEvent } from './evaluate';
import { SavedEvent, recordOf } from './save';

/** Macro metrics versions may be compared by. */
export const STORE_METRICS = ['averagePrecision', 'rocAuc'] as const;
export type StoreMetric = (typeof STORE_METRICS)[number];

const METRIC_NAMES: Record<StoreMetric, string> = {
  averagePrecision: 'macro AUPRC',
  rocAuc: 'macro ROC AUC',
};

export interface StoreOptions {
  /** Versions kept, the newest; the current one is always kept too. Default 5. */
  keep?: number;
  /** The macro metric on the test part that decides promotion; default average precision. */
  metric?: StoreMetric;
}

/** How a new version fared against the current one. */
export interface Promotion {
  version: string;
  /** Whether it became current. */
  promoted: boolean;
  metric: string;
  /** Its score on the test part. */
  score: number;
  /** The version that was current before, and its score on the same rows. */
  previous?: { version: string; score?: number };
  /** Why it was or was not promoted, as a sentence. */
  reason: string;
  /** Versions removed to keep the store at its size. */
  pruned: string[];
}

export type StoredEvent =
  | Exclude<SavedEvent, { type: 'result' }>
  | (Extract<SavedEvent, { type: 'result' }> & { promotion: Promotion });

/**
 * Saves each evaluated result as a new version in the model store at `root`, then makes it
 * current only when it scores at least as well as the current version on the same test rows
 * (those of the data set it was trained with, which the current model is scored on here). The
 * test rows must not move between retrainings: a separate test set, or files held out by a
 * stable hash of their path. A version whose classes differ from the current one's is promoted:
 * the current model cannot be scored on them.
 *
 *     ---e-e-R--|     ->     ---e-e-----S--|     (S: saved, promoted or not)
 */
export function saveVersion(
  root: string,
  hyperparameters: Readonly<Record<string, string | number | boolean>>,
  options: StoreOptions = {},
): OperatorFunction<EvaluatedEvent, StoredEvent> {
  const store = new ModelStore(root);
  const metric = options.metric ?? 'averagePrecision';
  const keep = options.keep ?? 5;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new Error(`keep: expected a whole number of versions >= 1, got ${keep}`);
  }

  return concatMap((event) => {
    if (event.type !== 'result') return [event];
    const test = event.evaluation.reports.test;
    if (test === undefined) {
      throw new Error(
        `${root}: a model store compares versions on test rows that stay the same between ` +
          `trainings, and this data set has none: give the loader a test set, or hold out ` +
          `test files by their path`,
      );
    }
    const record = recordOf(event, hyperparameters);
    return new Observable<StoredEvent>((subscriber) => {
      const abort = new AbortController();
      const run = async (): Promise<StoredEvent> => {
        const version = await store.add((dir) =>
          saveModelDirectory(dir, record, { signal: abort.signal }),
        );
        const score = macroOf(test.macro, metric);
        const current = await store.current();
        const previous =
          current === undefined
            ? undefined
            : { version: current.version, score: await scoreOf(current.version) };
        const promoted =
          previous === undefined || previous.score === undefined || score >= previous.score;
        if (promoted) {
          await store.makeCurrent(version, {
            reason: previous === undefined ? 'first' : 'promoted',
            metric: METRIC_NAMES[metric],
            score,
          });
        }
        const pruned = await store.prune(keep);
        const promotion: Promotion = {
          version,
          promoted,
          metric: METRIC_NAMES[metric],
          score,
          previous,
          reason: reasonOf(version, promoted, score, previous, METRIC_NAMES[metric]),
          pruned,
        };
        return { ...event, dir: store.dirOf(version), provenance: record.provenance, promotion };
      };

      /** The current version's score on this data set's test rows; undefined if incomparable. */
      const scoreOf = async (version: string): Promise<number | undefined> => {
        const loaded = await loadModelDirectory(store.dirOf(version));
        try {
          const labels = event.data.labels;
          const same =
            loaded.dim === event.data.dim &&
            loaded.labels.length === labels.length &&
            loaded.labels.every((l, i) => l === labels[i]);
          if (!same) return undefined;
          const rows = selectRows(event.data, rowsOf(event.data, Part.test));
          const scores = predictScores(loaded.model, rows.x, rows.dim);
          return macroOf(evaluateScores(rows.y, scores, rows.rows, labels).macro, metric);
        } finally {
          loaded.model.dispose();
        }
      };

      run().then(
        (stored) => {
          subscriber.next(stored);
          subscriber.complete();
        },
        (err: unknown) => subscriber.error(err),
      );
      return () => abort.abort();
    });
  });
}

function macroOf(macro: ClassMetrics, metric: StoreMetric): number {
  const value = macro[metric];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`the test part gives no ${METRIC_NAMES[metric]} (no class has positive rows)`);
  }
  return value;
}

function reasonOf(
  version: string,
  promoted: boolean,
  score: number,
  previous: Promotion['previous'],
  metric: string,
): string {
  const mine = `${version} scores ${metric} ${score.toFixed(4)} on the test rows`;
  if (previous === undefined) return `${mine}; the store had no current version`;
  if (previous.score === undefined) {
    return `${mine}; ${previous.version} has other classes or another input size`;
  }
  const theirs = `${previous.version} scores ${previous.score.toFixed(4)}`;
  return promoted ? `${mine}, ${theirs}: promoted` : `${mine}, ${theirs}: kept ${previous.version}`;
}
