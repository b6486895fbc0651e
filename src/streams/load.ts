import { OperatorFunction, concatMap, from } from 'rxjs';
import { DataSet } from '../dataset/dataset';
import { LoadOptions, loadDataSet } from '../dataset/load';

/**
 * Paths in, data sets out: each path is read and split with the seed.
 *
 *     path ---a-------b--|     ->     ---A-------B--|
 */
export function load(options: LoadOptions = {}): OperatorFunction<string, DataSet> {
  return concatMap((path) => from(loadDataSet(path, options)));
}
