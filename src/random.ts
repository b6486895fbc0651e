import seedrandom from 'seedrandom';
import betaFactory from '@stdlib/random-base-beta';

/**
 * A seeded source of random numbers. Every random choice of the package draws from one of these,
 * so one seed reproduces a whole run. Each stage derives its own stream by name, so adding a
 * stage or changing how many numbers one stage draws leaves the others' draws unchanged.
 */
export class Random {
  private readonly next: () => number;

  constructor(readonly seed: string | number) {
    this.next = seedrandom.alea(String(seed));
  }

  /** An independent stream for a named purpose, e.g. `random.derive('mixup')`. */
  derive(name: string): Random {
    return new Random(`${this.seed}/${name}`);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
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
    return betaFactory.factory(a, b, { prng: this.next });
  }

  /** A 31-bit integer, e.g. to seed a TF.js initializer. */
  int31(): number {
    return this.int(2 ** 31 - 1);
  }
}
