import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { lastValueFrom, tap, toArray } from 'rxjs';
import { createDataSet, DataSet, Part } from '../src/dataset/dataset';
import { Random } from '../src/random';
import { EarlyStopping } from '../src/train/early-stopping';
import { batchLoss, elementLoss, LossOptions, summedLoss } from '../src/train/losses';
import { buildClassifier, predictScores, predictScoresYielding } from '../src/train/model';
import { learningRateAt, patienceFor } from '../src/train/schedule';
import { countTurns } from './helpers';
import {
  EpochStats,
  TrainControl,
  TrainOptions,
  TrainResult,
  trainClassifier,
} from '../src/train/trainer';

const EPS = 1e-5;

interface NoiseSpec {
  rows?: number;
  dim?: number;
  classes?: number;
  /** The data set's seed, which drives shuffling, initialisation and dropout. */
  seed?: number;
  /** Every fifth row is validation unless told otherwise. */
  validation?: boolean;
}

/**
 * Embeddings uniform in [-1, 1] with labels drawn independently of them: nothing to learn, so the
 * validation loss can only flatten or rise once the biases have found the base rate. The values
 * come from a fixed stream, so two data sets that differ in `seed` hold the same rows.
 */
function noiseData(spec: NoiseSpec = {}): DataSet {
  const { rows = 200, dim = 8, classes = 2, seed = 1, validation = true } = spec;
  const values = new Random('train-test-rows');
  const x = Float32Array.from({ length: rows * dim }, () => values.uniform() * 2 - 1);
  const y = Float32Array.from({ length: rows * classes }, () => (values.uniform() < 0.5 ? 1 : 0));
  const parts = Uint8Array.from({ length: rows }, (_, r) =>
    validation && r % 5 === 0 ? Part.validation : Part.train,
  );
  const labels = Array.from({ length: classes }, (_, c) => `class${c}`);
  return createDataSet({ x, y, dim, labels, parts, seed });
}

type EpochEvent = { type: 'epoch' } & EpochStats;

async function train(
  data: DataSet,
  options: Partial<TrainOptions> = {},
  control: TrainControl = {},
): Promise<{ epochs: EpochEvent[]; result: TrainResult }> {
  const events = await lastValueFrom(trainClassifier(data, options, control).pipe(toArray()));
  const epochs = events.filter((e): e is EpochEvent => e.type === 'epoch');
  const last = events.at(-1);
  if (last?.type !== 'result') throw new Error('training ended without a result');
  return { epochs, result: last.result };
}

/** Runs `run` and returns what it rejected with; fails when it resolves. */
async function rejection(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection, but the call succeeded');
}

/**
 * The validation loss of a model, computed here rather than by the trainer: plain predictions,
 * then per row the sum over classes of -y ln(p) - (1 - y) ln(1 - p), p clipped to
 * [1e-7, 1 - 1e-7], averaged over the validation rows (SPEC 6), in float64.
 */
function independentValLoss(model: tf.LayersModel, data: DataSet): number {
  const k = data.labels.length;
  const rows = Array.from({ length: data.rows }, (_, r) => r).filter(
    (r) => data.parts[r] === Part.validation,
  );
  const x = new Float32Array(rows.length * data.dim);
  rows.forEach((r, i) => x.set(data.x.subarray(r * data.dim, (r + 1) * data.dim), i * data.dim));
  const probs = tf.tidy(() =>
    (model.predict(tf.tensor2d(x, [rows.length, data.dim])) as tf.Tensor).dataSync(),
  );

  let total = 0;
  rows.forEach((r, i) => {
    for (let c = 0; c < k; c++) {
      const p = Math.min(Math.max(probs[i * k + c], 1e-7), 1 - 1e-7);
      const y = data.y[r * k + c];
      total += -y * Math.log(p) - (1 - y) * Math.log(1 - p);
    }
  });
  return total / rows.length;
}

/** Loss values of one entry per (logit, label) pair, as `[pairs, 1]` tensors. */
function grid(logits: number[], labels: number[]) {
  const z: number[] = [];
  const y: number[] = [];
  for (const l of logits) {
    for (const t of labels) {
      z.push(l);
      y.push(t);
    }
  }
  return { z, y };
}

describe('training', () => {
  describe('losses (case 10)', () => {
    const focal: LossOptions = { kind: 'focal', alpha: 0.25, gamma: 2 };

    /** elementLoss of one entry whose probability is sigmoid(logit). */
    function lossOfLogit(logit: number, label: number, options: LossOptions): number {
      return tf.tidy(
        () =>
          elementLoss(
            tf.sigmoid(tf.tensor2d([[logit]])),
            tf.tensor2d([[label]]),
            options,
          ).dataSync()[0],
      );
    }

    function lossOfProb(p: number, label: number, options: LossOptions): number {
      return tf.tidy(
        () => elementLoss(tf.tensor2d([[p]]), tf.tensor2d([[label]]), options).dataSync()[0],
      );
    }

    it('should give a focal loss below 1e-6 for a logit of 30 and y = 1', () => {
      // p = sigmoid(30) rounds to 1 in float32 and is clipped to 1 - 1.19e-7; ce = 1.19e-7 and
      // (1 - p_t)^2 = (1.19e-7)^2, so the loss is about 0.25 * 1.4e-14 * 1.19e-7.
      const loss = lossOfLogit(30, 1, focal);
      expect(loss).to.be.at.least(0);
      expect(loss).to.be.below(1e-6);
    });

    it('should give a focal loss between 11.9 and 12.1 for a logit of 30 and y = 0', () => {
      // p clipped to 1 - 1.19e-7 (float32), so -ln(1 - p) = -ln(1.19e-7) = 15.94; p_t = 1 - p
      // gives (1 - p_t)^2 = 1 (to 1e-7); alpha_t = 0.75; loss = 0.75 * 15.94 = 11.96.
      expect(lossOfLogit(30, 0, focal)).to.be.within(11.9, 12.1);
    });

    it('should weigh a -1 entry as an absent label counted twice', () => {
      // Focal, gamma 0.5: 2 * (1 - 0.25) * 0.2^0.5 * -ln(0.8)
      //   = 1.5 * 0.4472136 * 0.2231436 = 0.149690.
      expect(lossOfProb(0.2, -1, { kind: 'focal', alpha: 0.25, gamma: 0.5 })).to.be.closeTo(
        0.14969,
        EPS,
      );
      // Cross-entropy: 2 * -ln(0.8) = 2 * 0.2231436 = 0.446287.
      expect(lossOfProb(0.2, -1, { kind: 'crossentropy' })).to.be.closeTo(0.446287, EPS);
    });

    it('should sum cross-entropy over classes and average it over the batch', () => {
      // Row 1: y (1, 0), p (0.9, 0.2): -ln 0.9 - ln 0.8 = 0.1053605 + 0.2231436 = 0.3285041.
      // Row 2: y (0, 1), p (0.3, 0.6): -ln 0.7 - ln 0.6 = 0.3566749 + 0.5108256 = 0.8675005.
      // Batch loss = (0.3285041 + 0.8675005) / 2 = 0.5980023; summed loss = 1.1960046.
      const [batch, summed] = tf.tidy(() => {
        const p = tf.tensor2d([
          [0.9, 0.2],
          [0.3, 0.6],
        ]);
        const y = tf.tensor2d([
          [1, 0],
          [0, 1],
        ]);
        const options: LossOptions = { kind: 'crossentropy' };
        return [batchLoss(p, y, options).dataSync()[0], summedLoss(p, y, options).dataSync()[0]];
      });
      expect(batch).to.be.closeTo(0.5980023, EPS);
      expect(summed).to.be.closeTo(1.1960046, EPS);
    });

    it('should stay finite, with finite gradients, for extreme logits, labels and gammas', () => {
      const { z, y } = grid(
        [-100, -50, -30, -16, -5, -1, 0, 1, 5, 16, 30, 50, 100],
        [-1, -0.5, 0, 0.1, 0.5, 0.9, 1],
      );
      const kinds: LossOptions[] = [
        { kind: 'crossentropy' },
        ...[0, 0.5, 1, 2.5, 4].map((gamma): LossOptions => ({ kind: 'focal', gamma, alpha: 0.25 })),
      ];
      const bad: string[] = [];
      for (const options of kinds) {
        tf.tidy(() => {
          const logits = tf.tensor2d(z, [z.length, 1]);
          const labels = tf.tensor2d(y, [y.length, 1]);
          const values = elementLoss(tf.sigmoid(logits), labels, options).dataSync();
          const grads = tf
            .grad((l: tf.Tensor) => batchLoss(tf.sigmoid(l), labels, options))(logits)
            .dataSync();
          z.forEach((logit, i) => {
            const where = `${options.kind} gamma ${options.gamma} logit ${logit} label ${y[i]}`;
            if (!Number.isFinite(values[i]) || values[i] < 0) bad.push(`${where}: ${values[i]}`);
            if (!Number.isFinite(grads[i])) bad.push(`${where}: gradient ${grads[i]}`);
          });
        });
      }
      expect(bad).to.deep.equal([]);
    });
  });

  describe('schedule (cases 15 and 16)', () => {
    it('should warm up over 5 epochs and then decay by a cosine to a tenth', () => {
      // 50 epochs: W = min(5, trunc(0.1 * 50)) = 5; epoch e < 5 -> 1e-4 * (e + 1) / 5.
      const warmup = [0, 1, 2, 3, 4].map((e) => learningRateAt(e, 50, 1e-4));
      [2e-5, 4e-5, 6e-5, 8e-5, 1e-4].forEach((rate, e) => {
        expect(warmup[e]).to.be.closeTo(rate, 1e-12);
      });
      // Epoch 5: progress (5 - 5) / 45 = 0 -> 1e-4 * (0.1 + 0.9 * (1 + 1) / 2) = 1e-4.
      expect(learningRateAt(5, 50, 1e-4)).to.be.closeTo(1e-4, 1e-12);
      // Epoch 49: progress 44 / 45, cos(pi * 44 / 45) = -cos(pi / 45) = -0.9975641;
      // 1e-4 * (0.1 + 0.9 * 0.0024359 / 2) = 1e-4 * 0.1010962 = 1.010962e-5.
      expect(learningRateAt(49, 50, 1e-4)).to.be.closeTo(1.010962e-5, 1e-10);
    });

    it('should not warm up below 10 epochs', () => {
      // 8 epochs: W = min(5, trunc(0.8)) = 0, so epoch 0 is at progress 0: the full rate.
      expect(learningRateAt(0, 8, 1e-4)).to.be.closeTo(1e-4, 1e-12);
    });

    it('should give patience min(10, max(5, trunc(epochs / 10)))', () => {
      // 10 -> max(5, 1) = 5; 50 -> 5; 75 -> trunc(7.5) = 7; 100 -> 10; 200 -> min(10, 20) = 10.
      expect([10, 50, 75, 100, 200].map(patienceFor)).to.deep.equal([5, 5, 7, 10, 10]);
    });
  });

  describe('early stopping', () => {
    it('should count as an improvement only a loss below best - 0.001', () => {
      const stopping = new EarlyStopping(5);
      expect(stopping.update(0, 1.0).improved).to.equal(true);
      // 1.0 - 0.001 = 0.999: 0.9995 is not below it, 0.9989 is.
      expect(stopping.update(1, 0.9995).improved).to.equal(false);
      expect(stopping.update(2, 0.9989).improved).to.equal(true);
      expect(stopping.bestEpoch).to.equal(2);
      expect(stopping.best).to.equal(0.9989);
    });

    it('should stop after `patience` epochs without improvement, counted from the best', () => {
      const stopping = new EarlyStopping(2);
      const steps = [1.0, 0.5, 0.5, 0.4, 0.4, 0.4].map((loss, e) => stopping.update(e, loss));
      // Improvements at 0, 1 and 3; epochs 4 and 5 are the 2 without, so 5 stops.
      expect(steps.map((s) => s.improved)).to.deep.equal([true, true, false, true, false, false]);
      expect(steps.map((s) => s.stop)).to.deep.equal([false, false, false, false, false, true]);
    });

    it('should keep epoch index 1 as best for 0.9, 0.5, 0.7, 0.8 without stopping (case 26)', () => {
      const stopping = new EarlyStopping(5);
      const steps = [0.9, 0.5, 0.7, 0.8].map((loss, e) => stopping.update(e, loss));
      expect(stopping.bestEpoch).to.equal(1);
      expect(stopping.best).to.equal(0.5);
      expect(steps.some((s) => s.stop)).to.equal(false);
    });
  });

  describe('trainer', () => {
    it('should stop a flat validation curve after exactly `patience` epochs (case 8)', async () => {
      // 50 epochs -> patience 5; the default rate of 1e-4 moves a noise model so little that the
      // validation loss soon improves by less than 0.001 per stretch of 5 epochs.
      const data = noiseData();
      const { epochs, result } = await train(data, { epochs: 50, learningRate: 1e-4 });
      try {
        const { history, bestEpoch, epochsRun } = result;
        expect(result.stoppedEarly).to.equal(true);
        expect(epochsRun).to.be.below(50);
        expect(epochsRun).to.equal(bestEpoch + 5);
        expect(epochs.map((e) => e.epoch)).to.deep.equal(history.map((e) => e.epoch));
        expect(history.map((e) => e.epoch)).to.deep.equal(
          Array.from({ length: epochsRun }, (_, i) => i + 1),
        );

        expect(result.stopReason).to.match(new RegExp(`stopped early at epoch ${epochsRun}\\b`));
        expect(result.stopReason).to.contain('did not improve');
        expect(result.stopReason).to.contain('5 epochs');
        expect(result.stopReason).to.match(new RegExp(`at epoch ${bestEpoch}\\b`));

        const best = history[bestEpoch - 1];
        expect(best.best).to.equal(true);
        for (const later of history.slice(bestEpoch)) {
          expect(later.best).to.equal(false);
          expect(later.valLoss).to.be.at.least(best.valLoss! - 0.001);
        }
        // Warm-up rate of epoch 1: 1e-4 * 1 / 5.
        expect(history[0].learningRate).to.be.closeTo(2e-5, 1e-12);

        // The returned weights are the best epoch's, not the last epoch's.
        const last = history[epochsRun - 1].valLoss!;
        expect(Math.abs(last - best.valLoss!)).to.be.above(1e-4);
        expect(independentValLoss(result.model, data)).to.be.closeTo(best.valLoss!, EPS);
      } finally {
        result.model.dispose();
      }
    });

    it('should keep the best weights when stopping never fires (case 26)', async () => {
      // A rate of 0.2 overfits noise labels at once: the validation loss is lowest early and
      // rises afterwards, within 4 epochs, fewer than the patience of 5.
      const data = noiseData();
      const { result } = await train(data, { epochs: 4, learningRate: 0.2 });
      try {
        expect(result.stoppedEarly).to.equal(false);
        expect(result.epochsRun).to.equal(4);
        expect(result.stopReason).to.contain('completed all 4 epochs');
        expect(result.bestEpoch).to.be.below(4);

        const best = result.history[result.bestEpoch - 1].valLoss!;
        const last = result.history[3].valLoss!;
        expect(last - best).to.be.above(1e-2);
        expect(independentValLoss(result.model, data)).to.be.closeTo(best, EPS);
      } finally {
        result.model.dispose();
      }
    });

    it('should repeat a run for the same seed and differ for another', async () => {
      const losses = async (seed: number) => {
        const { result } = await train(noiseData({ seed }), { epochs: 5, learningRate: 1e-2 });
        result.model.dispose();
        return result.history.map((e) => [e.loss, e.valLoss]);
      };
      const first = await losses(7);
      expect(await losses(7)).to.deep.equal(first);
      expect(await losses(8)).not.to.deep.equal(first);
    });

    it('should train seeded with dropout and hidden units', async () => {
      const options = { epochs: 3, learningRate: 1e-2, hiddenUnits: 16, dropout: 0.25 };
      const losses = async (dropout: number) => {
        const { result } = await train(noiseData({ seed: 3 }), { ...options, dropout });
        try {
          // Inference ignores dropout: two predictions of one row agree.
          const [a, b] = tf.tidy(() => {
            const x = tf.ones([1, 8]);
            const p1 = (result.model.predict(x) as tf.Tensor).dataSync();
            const p2 = (result.model.predict(x) as tf.Tensor).dataSync();
            return [Array.from(p1), Array.from(p2)];
          });
          expect(a).to.deep.equal(b);
        } finally {
          result.model.dispose();
        }
        return result.history.map((e) => [e.loss, e.valLoss]);
      };
      const first = await losses(0.25);
      for (const [loss, valLoss] of first) {
        expect(Number.isFinite(loss)).to.equal(true);
        expect(Number.isFinite(valLoss)).to.equal(true);
      }
      expect(await losses(0.25)).to.deep.equal(first);
      // Same initial weights and order, no dropout masks: the losses change.
      expect(await losses(0)).not.to.deep.equal(first);
    });

    it('should refuse a data set without validation rows unless allowed', async () => {
      const data = noiseData({ validation: false });
      const err = await rejection(() => train(data, { epochs: 2 }));
      expect(err.message).to.contain('no validation rows');

      const { result } = await train(data, { epochs: 2, allowNoValidation: true });
      result.model.dispose();
      expect(result.epochsRun).to.equal(2);
      expect(result.bestEpoch).to.equal(2);
      expect(result.history.map((e) => e.valLoss)).to.deep.equal([undefined, undefined]);
    });

    it('should refuse bad options, naming the field and the allowed range', async () => {
      const data = noiseData();
      const cases: [Partial<TrainOptions>, RegExp][] = [
        [{ epochs: 0 }, /epochs must be an integer >= 1, got 0/],
        [{ dropout: 1 }, /dropout must be in \[0, 1\), got 1/],
        [{ loss: 'foo' as TrainOptions['loss'] }, /loss must be crossentropy or focal, got foo/],
      ];
      for (const [options, message] of cases) {
        const err = await rejection(async () => train(data, options));
        expect(err.message).to.match(message);
      }
    });
  });

  describe('scoring', () => {
    it('should give the same scores in small chunks, yielding between them, as in one pass', async () => {
      const model = buildClassifier({ dim: 3, classes: 2, hiddenUnits: 4, dropout: 0, seed: 5 });
      const rows = 7;
      const x = Float32Array.from({ length: rows * 3 }, (_, i) => Math.sin(i));
      const baseline = tf.memory().numTensors;
      const turns = countTurns();
      // Rows 0-2, 3-5 and 6: the last chunk is short.
      const chunked = await predictScoresYielding(model, x, 3, 3);
      const turned = turns.stop();
      const whole = predictScores(model, x, 3, rows);
      // Independently: sigmoid(relu(x W1 + b1) W2 + b2), row by row.
      const [w1, b1, w2, b2] = model.getWeights().map((w) => Array.from(w.dataSync()));
      const expected = Array.from({ length: rows }, (_, r) => {
        const h = [0, 1, 2, 3].map((j) =>
          Math.max(0, b1[j] + [0, 1, 2].reduce((a, i) => a + x[r * 3 + i] * w1[i * 4 + j], 0)),
        );
        return [0, 1].map((c) => {
          const z = b2[c] + h.reduce((a, v, j) => a + v * w2[j * 2 + c], 0);
          return 1 / (1 + Math.exp(-z));
        });
      }).flat();

      expect(Array.from(chunked)).to.deep.equal(Array.from(whole));
      chunked.forEach((v, i) => expect(v).to.be.closeTo(expected[i], 1e-5));
      expect(turned, 'one turn of the event loop before each of the 3 chunks').to.be.at.least(3);
      expect(tf.memory().numTensors).to.equal(baseline);
      model.dispose();
    });
  });

  describe('tensor hygiene', () => {
    it('should release every tensor after a finished run', async () => {
      const baseline = tf.memory().numTensors;
      const { result } = await train(noiseData(), { epochs: 3 });
      expect(tf.memory().numTensors).to.be.above(baseline);
      result.model.dispose();
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should release every tensor when unsubscribed in the middle of an epoch', async () => {
      const baseline = tf.memory().numTensors;
      // 3200 training rows in batches of 8: 400 batches, far longer than the 5 ms wait.
      const data = noiseData({ rows: 4000, seed: 5 });
      const seen: string[] = [];
      const started = Date.now();
      await new Promise<void>((resolve) => {
        const subscription = trainClassifier(
          data,
          { epochs: 50, batchSize: 8, yieldEveryMs: 0 },
          { onSettled: resolve },
        ).subscribe({
          next: (e) => seen.push(e.type),
          error: () => seen.push('error'),
          complete: () => seen.push('complete'),
        });
        setTimeout(() => subscription.unsubscribe(), 5);
      });
      expect(seen).to.deep.equal([]);
      expect(Date.now() - started).to.be.below(5000);
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should release every tensor when unsubscribed from an epoch event', async () => {
      const baseline = tf.memory().numTensors;
      const seen: number[] = [];
      await new Promise<void>((resolve) => {
        const subscription = trainClassifier(noiseData(), { epochs: 20 }, { onSettled: resolve })
          .pipe(
            tap((e) => {
              if (e.type === 'epoch') seen.push(e.epoch);
            }),
          )
          .subscribe((e) => {
            if (e.type === 'epoch') subscription.unsubscribe();
          });
      });
      expect(seen).to.deep.equal([1]);
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should finish with the best weights so far when asked to stop', async () => {
      const baseline = tf.memory().numTensors;
      const data = noiseData();
      const controller = new AbortController();
      let settled!: () => void;
      const done = new Promise<void>((resolve) => (settled = resolve));
      const events = await lastValueFrom(
        trainClassifier(
          data,
          { epochs: 20, learningRate: 1e-2, batchSize: 8 },
          { stop: controller.signal, onSettled: () => settled() },
        ).pipe(
          tap((e) => {
            if (e.type === 'epoch') controller.abort();
          }),
          toArray(),
        ),
      );
      await done;
      const last = events.at(-1);
      if (last?.type !== 'result') throw new Error('no result after a stop request');
      const { result } = last;
      try {
        // Epoch 2 runs one batch, sees the request and rolls back to epoch 1's weights.
        expect(events.map((e) => e.type)).to.deep.equal(['epoch', 'result']);
        expect(result.stoppedEarly).to.equal(true);
        expect(result.stopReason).to.match(/stopped on request during epoch 2/);
        expect(result.epochsRun).to.equal(1);
        expect(result.bestEpoch).to.equal(1);
        expect(independentValLoss(result.model, data)).to.be.closeTo(
          result.history[0].valLoss!,
          EPS,
        );
      } finally {
        result.model.dispose();
      }
      expect(tf.memory().numTensors).to.equal(baseline);
    });

    it('should return to the baseline after each of five retrainings (case 25)', async () => {
      const baseline = tf.memory().numTensors;
      const counts: number[] = [];
      for (let run = 0; run < 5; run++) {
        const { result } = await train(noiseData({ seed: run }), { epochs: 3, hiddenUnits: 8 });
        result.model.dispose();
        counts.push(tf.memory().numTensors);
      }
      expect(counts).to.deep.equal([baseline, baseline, baseline, baseline, baseline]);
    });
  });
});
