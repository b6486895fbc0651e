import { OperatorFunction, concatMap, map } from 'rxjs';
import { DataSet } from '../dataset/dataset';
import {
  EpochStats,
  TrainControl,
  TrainOptions,
  TrainResult,
  trainClassifier,
} from '../train/trainer';

export type TrainedEvent =
  ({ type: 'epoch' } & EpochStats) | { type: 'result'; result: TrainResult; data: DataSet };

/**
 * Data sets in, training events out: the epochs of each run, then its result with the data set it
 * was trained on. Runs one after another; unsubscribing cancels the run in progress.
 *
 *     ---A----------B----------|
 *     ----e-e-e-R----e-e-e-R---|
 */
export function train(
  options: Partial<TrainOptions> = {},
  control: TrainControl = {},
): OperatorFunction<DataSet, TrainedEvent> {
  return concatMap((data) =>
    trainClassifier(data, options, control).pipe(
      map((event): TrainedEvent => (event.type === 'result' ? { ...event, data } : event)),
    ),
  );
}
