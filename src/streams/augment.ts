import { OperatorFunction, concatMap, map } from 'rxjs';
import {
  UpsamplingMode,
  mixupYielding as mixRows,
  smoothLabels,
  upsample as upsampleRows,
} from '../augment';
import { DataSet, withSettings } from '../dataset/dataset';
import { Random } from '../random';

/**
 * Raises every class of the train part to `ratio` times the largest one; ratio 0 passes the data
 * set through. Draws from the data set's seed, so a seed repeats a run.
 *
 *     ---A---B--|     ->     ---A'---B'--|
 */
export function upsample(options: {
  ratio: number;
  mode?: UpsamplingMode;
}): OperatorFunction<DataSet, DataSet> {
  const settings = {
    'Upsampling ratio': options.ratio,
    'Upsampling mode': options.mode ?? 'repeat',
  };
  return concatMap(async (data) =>
    withSettings(
      options.ratio > 0
        ? await upsampleRows(data, { ...options, random: new Random(data.seed).derive('upsample') })
        : data,
      settings,
    ),
  );
}

/** Blends a quarter of the labelled train rows with others (mixup) when `enabled`. */
export function mixup(enabled: boolean): OperatorFunction<DataSet, DataSet> {
  return concatMap(async (data) =>
    withSettings(
      enabled ? await mixRows(data, { random: new Random(data.seed).derive('mixup') }) : data,
      { 'Use mixup': enabled },
    ),
  );
}

/** Smooths the train labels with `alpha` when `enabled`. */
export function smooth(enabled: boolean, alpha = 0.1): OperatorFunction<DataSet, DataSet> {
  return map((data) =>
    withSettings(enabled ? smoothLabels(data, { alpha }) : data, {
      'Use label smoothing': enabled,
      'Label smoothing alpha': alpha,
    }),
  );
}
