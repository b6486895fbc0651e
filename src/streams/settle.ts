import { readdir, stat } from 'fs/promises';
import { join } from 'path';
import {
  MonoTypeOperatorFunction,
  Observable,
  SchedulerLike,
  asyncScheduler,
  concatMap,
  defer,
  from,
  map,
  of,
  switchMap,
  timer,
} from 'rxjs';

/**
 * Lets a trigger through once the files it is about have settled: nothing under the path has
 * been modified for `quietMs`. A trigger that arrives while an earlier one waits replaces it, so
 * a burst of triggers (a recorder writing a clip, a watch node firing for each write) becomes one.
 * A file still being written keeps changing its modification time and is never read half-way.
 *
 *     triggers   -a-b--c-----------|
 *     changes    ----x------               (x: the last write)
 *     out        -----------c------|       (c once quietMs have passed since x)
 *
 * @param lastChange the newest modification time of what a trigger is about, in ms since the epoch
 */
export function settle<T>(
  quietMs: number,
  lastChange: (trigger: T) => Promise<number> | number,
  scheduler: SchedulerLike = asyncScheduler,
): MonoTypeOperatorFunction<T> {
  if (!(quietMs >= 0) || !Number.isFinite(quietMs)) {
    throw new Error(`settle: expected a quiet period in ms >= 0, got ${quietMs}`);
  }
  const quiet = (trigger: T): Observable<void> =>
    defer(() => {
      const value = lastChange(trigger);
      return typeof value === 'number' ? of(value) : from(value);
    }).pipe(
      concatMap((changed) => {
        const left = changed + quietMs - scheduler.now();
        return left <= 0
          ? of(undefined)
          : timer(left, scheduler).pipe(concatMap(() => quiet(trigger)));
      }),
    );
  return (triggers) =>
    quietMs === 0
      ? triggers
      : triggers.pipe(switchMap((trigger) => quiet(trigger).pipe(map(() => trigger))));
}

/**
 * The newest modification time of `path` and, for a folder, of everything below it (hidden
 * entries too: a recorder may write under a temporary name first), in ms since the epoch; 0 for
 * a path that does not exist.
 */
export async function lastChangeUnder(path: string): Promise<number> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs;
  for (const entry of await readdir(path)) {
    newest = Math.max(newest, await lastChangeUnder(join(path, entry)));
  }
  return newest;
}
