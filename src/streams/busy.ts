import { Observable, OperatorFunction, Subscription } from 'rxjs';

/** What to do with an input that arrives while a run is in progress. */
export const BUSY_POLICIES = ['queue', 'restart', 'ignore'] as const;
export type BusyPolicy = (typeof BUSY_POLICIES)[number];

/** Why an input did not get (or did not finish) its run. */
export type DropReason = 'ignored' | 'replaced' | 'restarted';

export interface BusyOptions<T> {
  /** With `queue`: inputs that may wait; when full, the newest replaces the oldest. Default 1. */
  queueLength?: number;
  /** Told of every input that will not get a complete run, and why. */
  onDrop?: (item: T, reason: DropReason) => void;
}

/**
 * Runs `run(item)` for each input, one run at a time, with a policy for inputs that arrive while
 * a run is busy:
 *
 * - `queue`: they wait, at most `queueLength` of them; the newest replaces the oldest waiting one
 *   when the queue is full. With length 1: a, b, c during a's run -> a, then c (b replaced).
 * - `restart`: the run in progress is cancelled (unsubscribed) and the newest starts at once.
 * - `ignore`: they are dropped.
 *
 *     input   -a--b--c-----------|        queue (length 1)
 *     runs    -[a.....][c.....]--|
 *
 * Unsubscribing cancels the run in progress and forgets the waiting inputs. A run's error ends
 * the stream, so a caller that wants to go on catches errors inside `run`.
 */
export function whileBusy<T, R>(
  policy: BusyPolicy,
  run: (item: T) => Observable<R>,
  options: BusyOptions<T> = {},
): OperatorFunction<T, R> {
  const queueLength = options.queueLength ?? 1;
  if (!Number.isInteger(queueLength) || queueLength < 1) {
    throw new Error(`queue length: expected an integer >= 1, got ${queueLength}`);
  }
  const drop = options.onDrop ?? (() => undefined);

  return (source) =>
    new Observable<R>((subscriber) => {
      const waiting: T[] = [];
      let current: { item: T; subscription?: Subscription } | undefined;
      let sourceDone = false;

      const startNext = (): void => {
        while (current === undefined && waiting.length > 0) {
          const item = waiting.shift()!;
          const job: { item: T; subscription?: Subscription } = { item };
          current = job;
          const subscription = run(item).subscribe({
            next: (value) => subscriber.next(value),
            error: (err) => subscriber.error(err),
            complete: () => {
              if (current !== job) return;
              current = undefined;
              startNext();
            },
          });
          if (current === job) job.subscription = subscription;
        }
        if (current === undefined && sourceDone) subscriber.complete();
      };

      const input = source.subscribe({
        next: (item) => {
          if (current === undefined) {
            waiting.push(item);
            startNext();
          } else if (policy === 'ignore') {
            drop(item, 'ignored');
          } else if (policy === 'restart') {
            const cancelled = current;
            current = undefined;
            cancelled.subscription?.unsubscribe();
            drop(cancelled.item, 'restarted');
            waiting.push(item);
            startNext();
          } else {
            if (waiting.length >= queueLength) drop(waiting.shift()!, 'replaced');
            waiting.push(item);
          }
        },
        error: (err) => subscriber.error(err),
        complete: () => {
          sourceDone = true;
          if (current === undefined) subscriber.complete();
        },
      });

      return () => {
        input.unsubscribe();
        current?.subscription?.unsubscribe();
        current = undefined;
        waiting.length = 0;
      };
    });
}
