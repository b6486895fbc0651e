import { existsSync } from 'fs';
import { join } from 'path';

/** The shared folder of real data beside the checkout, as CI lays it out. */
export const SHARED_DATA = join(__dirname, '..', '..', 'shared', 'data');

/**
 * The path of a file of the shared real data. Missing data fails the test in CI, where the data
 * is always laid out, and skips it elsewhere with the reason printed.
 */
export function sharedData(ctx: Mocha.Context, ...parts: string[]): string {
  const path = join(SHARED_DATA, ...parts);
  if (existsSync(path)) return path;
  if (process.env.CI) throw new Error(`${path} is missing; CI must have ../shared/data`);
  process.stdout.write(`      skipped: ${path} is missing (real data lives in ../shared/data)\n`);
  ctx.skip();
}

/** The compiled command line, as `npm test` builds it first. */
export const CLI = join(__dirname, '..', 'dist', 'src', 'cli.js');

/** The error a promise rejects with; fails when it resolves instead. */
export async function refusal(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal, but the call succeeded');
}

/**
 * The recipe for the bird clips: every 3 s segment with 2 s of overlap, mixup and label smoothing;
 * a few hundred rows, so a learning rate of 0.001 over up to 100 epochs.
 */
export const BIRDS_RECIPE = [
  '--crop-mode',
  'segments',
  '--overlap',
  '2',
  '--learning-rate',
  '0.001',
  '--epochs',
  '100',
  '--mixup',
  '--label-smoothing',
];

/**
 * Counts the event loop's turns from now until `stop()`, which returns the count: a chain of
 * immediates, one per turn.
 */
export function countTurns(): { stop(): number } {
  let turns = 0;
  let counting = true;
  const tick = () => {
    if (!counting) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop() {
      counting = false;
      return turns;
    },
  };
}
