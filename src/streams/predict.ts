import { Observable, OperatorFunction, concatMap, defer, from, of } from 'rxjs';
import { DataSet, EmbeddingInfo, Part, rowsOf, selectRows } from '../dataset/dataset';
import { featureOrder, reorderColumns } from '../dataset/features';
import { LoadedModel, Provenance, loadModelDirectory } from '../store/model-directory';
import { predictScores } from '../train/model';

/** A loaded model directory, ready to score embeddings. */
export interface Predictor extends LoadedModel {
  /** The directory it was loaded from. */
  dir: string;
}

/** Loads a model directory for scoring. The caller owns the model and disposes it. */
export async function loadPredictor(dir: string): Promise<Predictor> {
  return { ...(await loadModelDirectory(dir)), dir };
}

/** Embeddings to score: `[rows, dim]` float32, row-major. */
export interface Embeddings {
  x: Float32Array;
  rows: number;
  /** Values per embedding, as they arrived; checked against the model's. */
  dim: number;
}

/**
 * Scores embeddings with a predictor. Embeddings of another length than the model's input are
 * refused with an error naming both lengths.
 *
 * @returns `[rows, classes]` sigmoid scores, row-major, in the model's label order.
 */
export function scoreEmbeddings(
  predictor: Predictor,
  embeddings: Embeddings,
  where = 'embeddings',
): Float32Array {
  const { x, rows, dim } = embeddings;
  if (dim !== predictor.dim) {
    throw new Error(
      `${where}: embeddings of ${dim} values, but the model at ${predictor.dir} expects ` +
        `${predictor.dim} values`,
    );
  }
  if (x.length !== rows * dim) {
    throw new Error(`${where}: ${x.length} values are not ${rows} rows of ${dim}`);
  }
  return predictScores(predictor.model, x, dim);
}

/** What {@link predict} is asked to do, with a context the caller gets back in the reply. */
export type PredictRequest<T> =
  | { type: 'load'; dir: string; context: T }
  | {
      type: 'score';
      embeddings: Embeddings;
      /** Names the input in errors, e.g. `msg.payload`. */
      where?: string;
      /** Score only with the model from this directory; fail when another one is in use. */
      dir?: string;
      context: T;
    };

/** The answer to one {@link PredictRequest}, in request order. */
export type PredictReply<T> =
  | { type: 'loaded'; predictor: Predictor; context: T }
  | { type: 'scored'; scores: Float32Array; rows: number; predictor: Predictor; context: T }
  | { type: 'failed'; error: Error; context: T };

export interface PredictOptions {
  /** Loads a model directory; default {@link loadPredictor}. */
  load?: (dir: string) => Promise<Predictor>;
  /** Called once, after unsubscribing, when every model this stream loaded has been disposed. */
  onReleased?: () => void;
}

/**
 * Scores embeddings with one model at a time and switches models on request. Requests are
 * answered strictly in order, one reply each: embeddings that arrive while a new model loads wait
 * for it, so none is dropped or scored twice. The previous model is disposed only once the new one
 * has loaded; when loading fails, the previous model stays in use. Failures are replies, not stream
 * errors, so one bad request leaves the stream running.
 *
 *     requests  -L----s--s--L---s-s--|
 *     replies   ---l--S--S----l-S-S--|     (S: scored by the model loaded before it)
 *
 * Unsubscribing disposes the current model, and a model that is still loading as soon as it
 * arrives; `onReleased` says when that is done.
 */
export function predict<T>(
  options: PredictOptions = {},
): OperatorFunction<PredictRequest<T>, PredictReply<T>> {
  const load = options.load ?? loadPredictor;

  return (requests) =>
    new Observable<PredictReply<T>>((subscriber) => {
      let current: Predictor | undefined;
      let lastFailure: string | undefined;
      let loading = 0;
      let closed = false;
      let released = false;

      const release = (): void => {
        if (!closed || loading > 0 || released) return;
        released = true;
        current?.model.dispose();
        current = undefined;
        options.onReleased?.();
      };

      const switchTo = async (dir: string, context: T): Promise<PredictReply<T>> => {
        loading++;
        try {
          const next = await load(dir);
          if (closed) {
            next.model.dispose();
            return { type: 'failed', error: new Error('closed while loading'), context };
          }
          const previous = current;
          current = next;
          lastFailure = undefined;
          previous?.model.dispose();
          return { type: 'loaded', predictor: next, context };
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          lastFailure = `loading ${dir} failed: ${error.message}`;
          return { type: 'failed', error, context };
        } finally {
          loading--;
          release();
        }
      };

      const score = (request: Extract<PredictRequest<T>, { type: 'score' }>): PredictReply<T> => {
        const { context } = request;
        if (current === undefined) {
          const why = lastFailure === undefined ? '' : ` (${lastFailure})`;
          return { type: 'failed', error: new Error(`no model is loaded${why}`), context };
        }
        if (request.dir !== undefined && request.dir !== current.dir) {
          const why = lastFailure === undefined ? '' : `: ${lastFailure}`;
          const error = new Error(`the model at ${request.dir} is not loaded${why}`);
          return { type: 'failed', error, context };
        }
        try {
          const scores = scoreEmbeddings(current, request.embeddings, request.where);
          return {
            type: 'scored',
            scores,
            rows: request.embeddings.rows,
            predictor: current,
            context,
          };
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          return { type: 'failed', error, context };
        }
      };

      const replies = requests.pipe(
        concatMap((request) =>
          request.type === 'load'
            ? from(switchTo(request.dir, request.context))
            : defer(() => of(score(request))),
        ),
      );
      const subscription = replies.subscribe(subscriber);

      return () => {
        closed = true;
        subscription.unsubscribe();
        release();
      };
    });
}

/** Per class, the score at or above which the class counts as present. */
export type ThresholdMode = 'f1' | 'fixed';

/**
 * The threshold of each class in the model's label order: with `f1`, the class's F1-best
 * threshold on the validation part, as saved in `provenance.json` (`fixed` where it has none);
 * with `fixed`, the same value for every class.
 */
export function thresholdsFor(predictor: Predictor, mode: ThresholdMode, fixed = 0.5): number[] {
  if (mode === 'fixed') return predictor.labels.map(() => fixed);
  const saved = predictor.provenance.thresholds ?? {};
  return predictor.labels.map((label) =>
    typeof saved[label] === 'number' && Number.isFinite(saved[label]) ? saved[label] : fixed,
  );
}

/** A class a row was found to contain. */
export interface LabelScore {
  label: string;
  score: number;
}

/**
 * The classes of one row whose score reaches their threshold, highest score first, at most
 * `maxLabels` of them (0: all).
 *
 * @param scores `[classes]` scores of one row.
 */
export function labelsAbove(
  scores: ArrayLike<number>,
  labels: readonly string[],
  thresholds: readonly number[],
  maxLabels = 0,
): LabelScore[] {
  const found: LabelScore[] = [];
  for (let c = 0; c < labels.length; c++) {
    if (scores[c] >= thresholds[c]) found.push({ label: labels[c], score: scores[c] });
  }
  found.sort((a, b) => b.score - a.score);
  return maxLabels > 0 ? found.slice(0, maxLabels) : found;
}

/** Which rows of a data set to score: a part, or all rows. */
export type PartChoice = 'auto' | 'validation' | 'test' | 'all';

/** A data set's part scored by a model, with its labels in the model's order. */
export interface ScoredPart {
  part: 'validation' | 'test' | 'all';
  /** `[rows, classes]` labels in the model's label order; 0 for a class the data set lacks. */
  y: Float32Array;
  /** `[rows, classes]` scores. */
  scores: Float32Array;
  rows: number;
  labels: string[];
}

/**
 * Refuses embeddings of recordings that were cut, filtered or embedded otherwise than the model's
 * training recordings, naming each difference: the model would score features it never saw.
 * Embeddings that did not come from audio (tables, embeddings files) are not compared.
 */
export function checkSameEmbedding(
  made: EmbeddingInfo,
  model: Provenance,
  where = 'data set',
): void {
  const trained = model.embedding;
  if (made.audio === undefined || trained.audio === undefined) return;
  const differences = Object.entries(trained.audio)
    .filter(([name, value]) => made.audio![name] !== value)
    .map(([name, value]) => `${name} ${String(made.audio![name])} (model: ${String(value)})`);
  if (made.source !== trained.source) {
    differences.unshift(`embedder ${made.source} (model: ${trained.source})`);
  }
  if (differences.length > 0) {
    throw new Error(
      `${where}: the recordings were embedded otherwise than the model's training recordings: ` +
        `${differences.join(', ')}; load them with the model's settings`,
    );
  }
}

/**
 * Scores a part of a data set with a model and lines up the data set's labels with the model's by
 * name. `auto` takes the test part when there is one, else validation, else every row. The data
 * set must have the model's dimension and no class the model does not know.
 */
export function scoreDataSet(
  predictor: Predictor,
  data: DataSet,
  choice: PartChoice = 'auto',
  where = 'data set',
): ScoredPart {
  // A table's columns are matched to the model's training table by name, before any count: a
  // missing or extra column is named.
  const order = featureOrder(
    data.embedding.features,
    predictor.provenance.embedding.features,
    where,
  );
  if (data.dim !== predictor.dim) {
    throw new Error(
      `${where}: embeddings of ${data.dim} values, but the model at ${predictor.dir} expects ` +
        `${predictor.dim} values`,
    );
  }
  checkSameEmbedding(data.embedding, predictor.provenance, where);
  const columns = labelColumns(data.labels, predictor, where);
  const { part, rows } = pickRows(data, choice, where);
  const subset = selectRows(data, rows);
  const x = order === undefined ? subset.x : reorderColumns(subset.x, data.dim, order);

  const k = predictor.labels.length;
  const kData = data.labels.length;
  const y = new Float32Array(rows.length * k);
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < kData; c++) y[r * k + columns[c]] = subset.y[r * kData + c];
  }
  const scores = scoreEmbeddings(predictor, { x, rows: rows.length, dim: data.dim });
  return { part, y, scores, rows: rows.length, labels: [...predictor.labels] };
}

/** For each data set label, its column in the model's output. */
function labelColumns(labels: readonly string[], predictor: Predictor, where: string): number[] {
  const unknown = labels.filter((label) => !predictor.labels.includes(label));
  if (unknown.length > 0) {
    throw new Error(
      `${where}: classes the model at ${predictor.dir} does not know: ${unknown.join(', ')} ` +
        `(the model knows ${predictor.labels.join(', ')})`,
    );
  }
  return labels.map((label) => predictor.labels.indexOf(label));
}

function pickRows(
  data: DataSet,
  choice: PartChoice,
  where: string,
): { part: ScoredPart['part']; rows: number[] } {
  const test = rowsOf(data, Part.test);
  const validation = rowsOf(data, Part.validation);
  const all = Array.from({ length: data.rows }, (_, i) => i);
  const picked =
    choice === 'auto'
      ? test.length > 0
        ? { part: 'test' as const, rows: test }
        : validation.length > 0
          ? { part: 'validation' as const, rows: validation }
          : { part: 'all' as const, rows: all }
      : choice === 'all'
        ? { part: 'all' as const, rows: all }
        : { part: choice, rows: choice === 'test' ? test : validation };
  if (picked.rows.length === 0) throw new Error(`${where}: has no ${picked.part} rows to score`);
  return picked;
}
