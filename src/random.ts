import seedrandom from 'seedrandom';
import betaFactory from '@stdlib/random-base-beta';

/**
 * A seeded source of random numbers. Every random choice of the package draws from one of these,
 * so one seed reproduces a whole run. Each stage derives its own stream by name, so adding a
 * stage or changing how many numbers one stage draws leaves the others' draws unchanged.
 */
export class Random {
  // Alea's state (Baagoe), seeded by seedrandom's Alea and stepped by the same recurrence in a
  // method rather than in a closure of each generator: optimised code that inlines a closure
  // holds that closure, and is thrown away whenever a collection frees the generator.
  private s0: number;
  private s1: number;
  private s2: number;
  private c: number;

  /**
   * A generator that lives as long as the package. V8 holds the hidden class that generators
   * reach by adding their fields only weakly: once every generator of a run has been collected it
   * goes, and with it the optimised code of every loop that drew from one, which the next run
   * (the next upsampling, say) then starts again unoptimised. This one keeps that class alive.
   */
  private static readonly shapeKeeper = new Random('shape');

  constructor(readonly seed: string | number) {
    const state = seedrandom.alea(String(seed), { state: true }).state();
    this.s0 = state.s0;
    this.s1 = state.s1;
    this.s2 = state.s2;
    this.c = state.c;
  }

  /** An independent stream for a named purpose, e.g. `random.derive('mixup')`. */
  derive(name: string): Random {
    return new Random(`${this.seed}/${name}`);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    const t = 2091639 * this.s0 + this.c * 2 ** -32;
    this.s0 = this.s1;
    this.s1 = this.s2;
    this.c = t | 0;
    this.s2 = t - this.c;
    return this.s2;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  choice<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Fisher-Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** A sampler of Beta(a, b) drawing from this stream. */
  beta(a: number, b: number): () => number {
    return betaFactory.factory(a, b, { prng: () => this.uniform() });
  }

  /** A 31-bit integer, e.g. to seed a TF.js initializer. */
  int31(): number {
    return this.int(2 ** 31 - 1);
  }
}
