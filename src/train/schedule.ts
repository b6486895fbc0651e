/** Warm-up length: min(5, trunc(0.1 * epochs)) epochs; 0 below 10 epochs. */
export function warmupEpochs(epochs: number): number {
  return Math.min(5, Math.trunc(0.1 * epochs));
}

/**
 * Learning rate of epoch `epoch` (from 0): a linear warm-up to `rate` over the warm-up epochs,
 * then a cosine decay to a tenth of it at the last epoch.
 *
 *     learningRateAt(0, 50, 1e-4) = 2e-5; learningRateAt(5, 50, 1e-4) = 1e-4
 */
export function learningRateAt(epoch: number, epochs: number, rate: number): number {
  const warmup = warmupEpochs(epochs);
  if (epoch < warmup) return (rate * (epoch + 1)) / warmup;
  const progress = (epoch - warmup) / Math.max(1, epochs - warmup);
  return rate * (0.1 + (0.9 * (1 + Math.cos(Math.PI * progress))) / 2);
}

/** Epochs without improvement before early stopping: min(10, max(5, trunc(epochs / 10))). */
export function patienceFor(epochs: number): number {
  return Math.min(10, Math.max(5, Math.trunc(epochs / 10)));
}
