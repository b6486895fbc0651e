/** An improvement is a validation loss below best - MIN_DELTA. */
export const MIN_DELTA = 0.001;

export interface EarlyStoppingStep {
  improved: boolean;
  stop: boolean;
}

/**
 * Watches the validation loss: stops after `patience` epochs without an improvement. The caller
 * keeps the weights of every improving epoch, so the best ones are what a run leaves behind
 * whether or not stopping fired.
 */
export class EarlyStopping {
  best = Infinity;
  bestEpoch = -1;
  private wait = 0;

  constructor(readonly patience: number) {}

  update(epoch: number, valLoss: number): EarlyStoppingStep {
    if (valLoss < this.best - MIN_DELTA) {
      this.best = valLoss;
      this.bestEpoch = epoch;
      this.wait = 0;
      return { improved: true, stop: false };
    }
    this.wait++;
    return { improved: false, stop: this.wait >= this.patience };
  }
}
