import { expect } from 'chai';
import {
  THRESHOLD_GRID,
  averagePrecision,
  bestF1Threshold,
  confusionAt,
  evaluate,
  evaluateYielding,
  macroAuprc,
  macroAuroc,
  macroRanking,
  macroRankingYielding,
  rocAuc,
} from '../src/evaluate/metrics';
import { countTurns } from './helpers';
import { Random } from '../src/random';
import { CSV_HEADER, formatReportTable, reportToCsv, reportToJson } from '../src/evaluate/report';

const EPS = 1e-5;

describe('metrics', () => {
  describe('known values', () => {
    const labels = [1, 0, 1, 1, 0, 0, 1, 0];
    const scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2];

    it('should give average precision 0.74702', () => {
      // Scores are distinct and already descending; each positive adds recall 1/4 at the
      // precision of its rank: ranks 1, 3, 4, 7 -> P = 1/1, 2/3, 3/4, 4/7.
      // AP = (1 + 0.666667 + 0.75 + 0.571429) / 4 = 2.988095 / 4 = 0.747024.
      expect(averagePrecision(labels, scores)).to.be.closeTo(0.747024, EPS);
    });

    it('should give ROC AUC 0.6875', () => {
      // Negatives 0.8, 0.55, 0.4, 0.2. Positive 0.9 beats 4, 0.7 beats 3, 0.6 beats 3, 0.3 beats 1.
      // AUC = 11 / (4 * 4) = 0.6875.
      expect(rocAuc(labels, scores)).to.be.closeTo(0.6875, EPS);
    });

    it('should count a score equal to the threshold as positive and give P 0.6, R 0.75', () => {
      // >= 0.5: 0.9 (1), 0.8 (0), 0.7 (1), 0.6 (1), 0.55 (0) -> tp 3, fp 2; below: fn 1 (0.3), tn 2.
      // P = 3/5, R = 3/4, F1 = 2PR / (P + R) = 0.9 / 1.35 = 0.666667.
      const c = confusionAt(labels, scores, 0.5);
      expect([c.tp, c.fp, c.tn, c.fn]).to.deep.equal([3, 2, 2, 1]);
      expect(c.precision).to.be.closeTo(0.6, EPS);
      expect(c.recall).to.be.closeTo(0.75, EPS);
      expect(c.f1).to.be.closeTo(0.666667, EPS);
      expect(confusionAt([1, 0], [0.5, 0.49], 0.5).tp).to.equal(1);
    });
  });

  describe('edges', () => {
    it('should count tied scores half in ROC AUC', () => {
      // Positives 0.9, 0.5; negative 0.5. 0.9 > 0.5 counts 1, the tie 0.5 = 0.5 counts 1/2.
      // AUC = 1.5 / (2 * 1) = 0.75.
      expect(rocAuc([0, 1, 1], [0.5, 0.9, 0.5])).to.be.closeTo(0.75, EPS);
    });

    it('should treat tied scores as one threshold in average precision', () => {
      // Same data: threshold 0.9 -> tp 1, fp 0, P 1, R 1/2; threshold 0.5 -> tp 2, fp 1, P 2/3, R 1.
      // AP = 0.5 * 1 + 0.5 * 2/3 = 0.833333.
      expect(averagePrecision([0, 1, 1], [0.5, 0.9, 0.5])).to.be.closeTo(0.833333, EPS);

      // Two tie groups of one positive and one negative each: threshold 0.8 -> P 1/2, R 1/2;
      // threshold 0.4 -> P 2/4, R 1. AP = 0.5 * 0.5 + 0.5 * 0.5 = 0.5, whatever the row order.
      expect(averagePrecision([1, 0, 1, 0], [0.8, 0.8, 0.4, 0.4])).to.be.closeTo(0.5, EPS);
      expect(averagePrecision([0, 1, 0, 1], [0.8, 0.8, 0.4, 0.4])).to.be.closeTo(0.5, EPS);
    });

    it('should read -1 as negative and a fraction by which side of 0.5 it falls on', () => {
      // Positive: 1 (0.9), 0.6 (0.6); negative: 0.4 (0.7), -1 (0.1).
      // Descending: 0.9 P, 0.7 N, 0.6 P, 0.1 N -> AP = 0.5 * 1 + 0.5 * 2/3 = 0.833333.
      // AUC: 0.9 beats both negatives, 0.6 beats 0.1 -> 3 / 4 = 0.75.
      const labels = [-1, 1, 0.6, 0.4];
      const scores = [0.1, 0.9, 0.6, 0.7];
      expect(averagePrecision(labels, scores)).to.be.closeTo(0.833333, EPS);
      expect(rocAuc(labels, scores)).to.be.closeTo(0.75, EPS);
    });

    it('should leave AP and AUC undefined without positives, AUC undefined without negatives', () => {
      expect(averagePrecision([0, -1, 0], [0.2, 0.9, 0.4])).to.equal(undefined);
      expect(rocAuc([0, -1, 0], [0.2, 0.9, 0.4])).to.equal(undefined);
      expect(rocAuc([1, 1], [0.2, 0.9])).to.equal(undefined);
      // Every row positive: precision 1 at every threshold, AP = 1.
      expect(averagePrecision([1, 1], [0.2, 0.9])).to.be.closeTo(1, EPS);
    });

    it('should give precision, recall and F1 of 0 when nothing is predicted positive', () => {
      const c = confusionAt([1, 0], [0.1, 0.2], 0.5);
      expect(c).to.deep.equal({ tp: 0, fp: 0, tn: 1, fn: 1, precision: 0, recall: 0, f1: 0 });
    });

    it('should refuse NaN scores and arrays of different lengths', () => {
      expect(() => averagePrecision([1, 0], [0.5, NaN])).to.throw(/scores\[1\] is NaN/);
      expect(() => rocAuc([1, 0], [0.5])).to.throw(/2 labels, 1 scores/);
    });

    it('should agree with the formula written out pair by pair on tied random data', () => {
      // A slow, direct reading of both definitions, to check the single-walk version.
      const slowAp = (l: number[], s: number[]): number => {
        const thresholds = [...new Set(s)].sort((a, b) => b - a);
        const positives = l.filter((v) => v >= 0.5).length;
        let ap = 0;
        let previousRecall = 0;
        for (const t of thresholds) {
          const tp = s.filter((v, i) => v >= t && l[i] >= 0.5).length;
          const predicted = s.filter((v) => v >= t).length;
          ap += (tp / positives - previousRecall) * (tp / predicted);
          previousRecall = tp / positives;
        }
        return ap;
      };
      const slowAuc = (l: number[], s: number[]): number => {
        let pairs = 0;
        let count = 0;
        l.forEach((li, i) =>
          l.forEach((lj, j) => {
            if (li < 0.5 || lj >= 0.5) return;
            count++;
            pairs += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
          }),
        );
        return pairs / count;
      };

      const random = new Random(29);
      const next = (): number => random.uniform();
      for (let trial = 0; trial < 20; trial++) {
        const n = 30 + trial;
        const l = Array.from({ length: n }, (_, i) => (i < 3 ? i % 2 : next() < 0.3 ? 1 : 0));
        const s = Array.from({ length: n }, () => Math.floor(next() * 8) / 8);
        expect(averagePrecision(l, s)).to.be.closeTo(slowAp(l, s), 1e-12);
        expect(rocAuc(l, s)).to.be.closeTo(slowAuc(l, s), 1e-12);
      }
    });
  });

  describe('thresholds', () => {
    it('should hold 16 values from 0.10 to 0.85 in steps of 0.05, without drift', () => {
      expect(THRESHOLD_GRID).to.deep.equal([
        0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
      ]);
    });

    it('should pick the F1-best grid threshold, the lower one on a tie', () => {
      // Labels 1, 1, 0, 1, 0 at scores 0.9, 0.6, 0.42, 0.33, 0.2; F1 = 2tp / (2tp + fp + fn).
      //   0.10-0.20: all five -> tp 3, fp 2, fn 0 -> 6/8 = 0.75
      //   0.25-0.30: 0.9, 0.6, 0.42, 0.33 -> tp 3, fp 1, fn 0 -> 6/7 = 0.857143 (best, twice)
      //   0.35-0.40: 0.9, 0.6, 0.42 -> tp 2, fp 1, fn 1 -> 4/6
      //   0.45-0.60: 0.9, 0.6 -> tp 2, fp 0, fn 1 -> 4/5
      //   0.65-0.85: 0.9 -> tp 1, fn 2 -> 2/4
      // So 0.25 wins over 0.30; P = 3/4, R = 3/3.
      const best = bestF1Threshold([1, 1, 0, 1, 0], [0.9, 0.6, 0.42, 0.33, 0.2]);
      expect(best.threshold).to.equal(0.25);
      expect(best.f1).to.be.closeTo(0.857143, EPS);
      expect(best.precision).to.be.closeTo(0.75, EPS);
      expect(best.recall).to.be.closeTo(1, EPS);
    });

    it('should fall back to the lowest threshold when every F1 is 0', () => {
      expect(bestF1Threshold([0, 0], [0.3, 0.9])).to.deep.equal({
        threshold: 0.1,
        f1: 0,
        precision: 0,
        recall: 0,
      });
    });
  });

  describe('evaluate', () => {
    // Rows of [A, B]: labels and scores.
    //   r0: 1 0 | 0.82 0.33   single label A, top score A -> right
    //   r1: 0 1 | 0.62 0.73   single label B, top score B -> right
    //   r2: 1 1 | 0.42 0.93   two labels, not in top-1
    //   r3: 0 0 | 0.22 0.52   no label, not in top-1
    //   r4: 1 0 | 0.32 0.5    single label A, top score B -> wrong
    const y = new Float32Array([1, 0, 0, 1, 1, 1, 0, 0, 1, 0]);
    const scores = new Float32Array([0.82, 0.33, 0.62, 0.73, 0.42, 0.93, 0.22, 0.52, 0.32, 0.5]);
    const report = evaluate(y, scores, 5, ['A', 'B']);

    it('should count each class at 0.5', () => {
      // A: >= 0.5 are r0 (1), r1 (0) -> tp 1, fp 1; below: r2, r4 positive -> fn 2; r3 -> tn 1.
      //    P 1/2, R 1/3, F1 = 2 / (2 + 1 + 2) = 0.4.
      // B: >= 0.5 are r1 (1), r2 (1), r3 (0), r4 (0.5, 0) -> tp 2, fp 2; r0 -> tn 1; fn 0.
      //    P 1/2, R 1, F1 = 4 / (4 + 2) = 0.666667.
      const [a, b] = report.classes;
      expect([a.samples, a.tp, a.fp, a.tn, a.fn]).to.deep.equal([3, 1, 1, 1, 2]);
      expect([b.samples, b.tp, b.fp, b.tn, b.fn]).to.deep.equal([2, 2, 2, 1, 0]);
      expect(a.precision).to.be.closeTo(0.5, EPS);
      expect(a.recall).to.be.closeTo(0.333333, EPS);
      expect(a.f1).to.be.closeTo(0.4, EPS);
      expect(b.precision).to.be.closeTo(0.5, EPS);
      expect(b.recall).to.be.closeTo(1, EPS);
      expect(b.f1).to.be.closeTo(0.666667, EPS);
    });

    it('should rank each class and pick its threshold', () => {
      // A descending: 0.82 P, 0.62 N, 0.42 P, 0.32 P, 0.22 N.
      //   AP = (1/1 + 2/3 + 3/4) / 3 = 0.805556; AUC: 0.82 beats 2, 0.42 beats 1, 0.32 beats 1
      //   -> 4/6 = 0.666667. Threshold: 0.25-0.30 keep 0.82, 0.62, 0.42, 0.32 -> tp 3, fp 1,
      //   F1 6/7 = 0.857143 (0.10-0.20: 6/8, 0.35-0.40: 4/6, 0.45-0.60: 2/5, 0.65-0.80: 2/4).
      // B descending: 0.93 P, 0.73 P, 0.52 N, 0.5 N, 0.33 N -> AP 1, AUC 1. Threshold: 0.55-0.70
      //   keep 0.93, 0.73 -> F1 1 (0.10-0.30: 4/7, 0.35-0.50: 4/6, 0.75-0.85: 2/3).
      const [a, b] = report.classes;
      expect(a.averagePrecision).to.be.closeTo(0.805556, EPS);
      expect(a.rocAuc).to.be.closeTo(0.666667, EPS);
      expect(a.threshold).to.equal(0.25);
      expect(a.precisionAtThreshold).to.be.closeTo(0.75, EPS);
      expect(a.recallAtThreshold).to.be.closeTo(1, EPS);
      expect(a.f1AtThreshold).to.be.closeTo(0.857143, EPS);
      expect(b.averagePrecision).to.be.closeTo(1, EPS);
      expect(b.rocAuc).to.be.closeTo(1, EPS);
      expect(b.threshold).to.equal(0.55);
      expect(b.f1AtThreshold).to.be.closeTo(1, EPS);
    });

    it('should put means of the rates and sums of the counts in the macro row', () => {
      // P (0.5 + 0.5) / 2, R (1/3 + 1) / 2, F1 (0.4 + 2/3) / 2, threshold (0.25 + 0.55) / 2,
      // P@T (0.75 + 1) / 2, R@T 1, F1@T (6/7 + 1) / 2, AP (0.805556 + 1) / 2, AUC (2/3 + 1) / 2.
      const m = report.macro;
      expect(m.label).to.equal('macro');
      expect([m.samples, m.tp, m.fp, m.tn, m.fn]).to.deep.equal([5, 3, 3, 2, 2]);
      expect(m.precision).to.be.closeTo(0.5, EPS);
      expect(m.recall).to.be.closeTo(0.666667, EPS);
      expect(m.f1).to.be.closeTo(0.533333, EPS);
      expect(m.threshold).to.be.closeTo(0.4, EPS);
      expect(m.precisionAtThreshold).to.be.closeTo(0.875, EPS);
      expect(m.recallAtThreshold).to.be.closeTo(1, EPS);
      expect(m.f1AtThreshold).to.be.closeTo(0.928571, EPS);
      expect(m.averagePrecision).to.be.closeTo(0.902778, EPS);
      expect(m.rocAuc).to.be.closeTo(0.833333, EPS);
      expect(report.rows).to.equal(5);
      expect(report.warnings).to.deep.equal([]);
    });

    it('should measure top-1 accuracy over single-label rows only', () => {
      // r0 right, r1 right, r4 wrong; r2 and r3 skipped -> 2/3.
      expect(report.top1).to.be.closeTo(0.666667, EPS);
    });

    it('should refuse arrays that do not hold rows x classes entries', () => {
      expect(() => evaluate(y, scores, 4, ['A', 'B'])).to.throw(/expected 4 rows x 2 classes = 8/);
      expect(() => evaluate(y, scores.subarray(1), 5, ['A', 'B'])).to.throw(/scores has 9/);
    });
  });

  describe('a class without positives', () => {
    // Columns A, B, C, D over three rows:
    //   A: labels 0, 1, 1 | scores 0.5, 0.9, 0.5  -> AP 0.833333, AUC 0.75 (see the edges above)
    //   B: labels 1, 0, 0 | scores 0.8, 0.1, 0.2  -> AP 1, AUC 1
    //   C: labels 0, 0, -1 | scores 0.3, 0.6, 0.1 -> no positive: AP and AUC undefined
    //   D: labels 1, 1, 1 | scores 0.7, 0.6, 0.9  -> AP 1, no negative: AUC undefined
    const y = new Float32Array([0, 1, 0, 1, 1, 0, 0, 1, 1, 0, -1, 1]);
    const scores = new Float32Array([0.5, 0.8, 0.3, 0.7, 0.9, 0.1, 0.6, 0.6, 0.5, 0.2, 0.1, 0.9]);
    const report = evaluate(y, scores, 3, ['A', 'B', 'C', 'D']);

    it('should leave its AP undefined and keep the macro row a number over the others', () => {
      // Macro AP = (0.833333 + 1 + 1) / 3 = 0.944444; macro AUC = (0.75 + 1) / 2 = 0.875.
      expect(report.classes[2].averagePrecision).to.equal(undefined);
      expect(report.classes[2].rocAuc).to.equal(undefined);
      expect(report.classes[3].rocAuc).to.equal(undefined);
      expect(report.macro.averagePrecision).to.be.closeTo(0.944444, EPS);
      expect(report.macro.rocAuc).to.be.closeTo(0.875, EPS);
      expect(macroAuprc(y, scores, 3, 4)).to.be.closeTo(0.944444, EPS);
      expect(macroAuroc(y, scores, 3, 4)).to.be.closeTo(0.875, EPS);
      expect(macroAuprc(y, scores, 3)).to.be.closeTo(0.944444, EPS);
      const both = macroRanking(y, scores, 3, 4);
      expect(both.auprc).to.be.closeTo(0.944444, EPS);
      expect(both.auroc).to.be.closeTo(0.875, EPS);
    });

    it('should give the same figures when it hands the event loop back between classes', async () => {
      // A slice of 0 ms yields after every class: 4 classes, 4 turns.
      const turns = countTurns();
      const both = await macroRankingYielding(y, scores, 3, 4, 0);
      expect(turns.stop()).to.be.at.least(4);
      expect(both.auprc).to.be.closeTo(0.944444, EPS);
      expect(both.auroc).to.be.closeTo(0.875, EPS);
    });

    it('should report the same when it hands the event loop back between classes', async () => {
      const turns = countTurns();
      const yielding = await evaluateYielding(y, scores, 3, ['A', 'B', 'C', 'D'], 0);
      expect(turns.stop()).to.be.at.least(4);
      expect(yielding).to.deep.equal(report);
      expect(yielding.macro.averagePrecision).to.be.closeTo(0.944444, EPS);
    });

    it('should name the class in a warning', () => {
      expect(report.warnings).to.have.length(3);
      expect(report.warnings[0]).to.match(/^class "C" has no positive rows/);
      expect(report.warnings[0]).to.include('average precision');
      expect(report.warnings[1]).to.match(/^class "D" has no negative rows/);
      expect(report.warnings[2]).to.include('averages over the 3 of 4 classes');
    });

    it('should leave it out of every column of the macro row', () => {
      // C: 0.6 >= 0.5 with label 0 -> fp 1, tn 2 in its own row.
      // Macro precision = (P_A + P_B + P_D) / 3 with P_A = 2/3 (0.5, 0.9, 0.5 all predicted,
      // two positive), P_B = 1/1, P_D = 3/3 -> 2.666667 / 3 = 0.888889; the counts sum A, B, D:
      // A tp 2 fp 1, B tp 1 tn 2, D tp 3 -> tp 6, fp 1, tn 2, fn 0.
      const c = report.classes[2];
      expect([c.samples, c.tp, c.fp, c.tn, c.fn]).to.deep.equal([0, 0, 1, 2, 0]);
      expect(report.macro.precision).to.be.closeTo(0.888889, EPS);
      const m = report.macro;
      expect([m.samples, m.tp, m.fp, m.tn, m.fn]).to.deep.equal([6, 6, 1, 2, 0]);
      expect(report.top1).to.equal(undefined);
    });

    it('should give no top-1 accuracy for a single class', () => {
      const one = evaluate(new Float32Array([1, 0]), new Float32Array([0.9, 0.2]), 2, ['A']);
      expect(one.top1).to.equal(undefined);
      expect(one.macro.averagePrecision).to.equal(1);
    });

    it('should give undefined macro AP and AUC for no rows', () => {
      expect(macroAuprc(new Float32Array(0), new Float32Array(0), 0, 4)).to.equal(undefined);
      expect(macroAuroc(new Float32Array(0), new Float32Array(0), 0, 4)).to.equal(undefined);
      expect(macroAuroc(new Float32Array(0), new Float32Array(0), 0)).to.equal(undefined);
    });

    it('should refuse a matrix whose size does not fit rows x classes', () => {
      expect(() => macroAuprc(y, scores, 5)).to.throw(/got 2\.4 \(y has 12 entries\)/);
      expect(() => macroAuprc(y, scores, 3, 3)).to.throw(/expected 3 rows x 3 classes = 9/);
    });
  });

  describe('reports', () => {
    const y = new Float32Array([1, 0, 0, 1, 1, 1, 0, 0, 1, 0]);
    const scores = new Float32Array([0.82, 0.33, 0.62, 0.73, 0.42, 0.93, 0.22, 0.52, 0.32, 0.5]);
    const labels = ['Turdus merula, Blackbird', 'Robin\'s "red" breast'];
    const report = evaluate(y, scores, 5, labels);

    it('should write the header, the macro row first, then classes with quoted labels', () => {
      // Values of the evaluate example above, to 5 decimals.
      const lines = reportToCsv(report).split('\n');
      expect(lines[0]).to.equal(
        'Class,Samples,Precision,Recall,F1,Threshold,Precision@T,Recall@T,F1@T,AP,AUROC,TP,FP,TN,FN',
      );
      expect(CSV_HEADER).to.equal(lines[0]);
      expect(lines[1]).to.equal(
        'macro,5,0.50000,0.66667,0.53333,0.40000,0.87500,1.00000,0.92857,0.90278,0.83333,3,3,2,2',
      );
      expect(lines[2]).to.equal(
        '"Turdus merula, Blackbird",3,0.50000,0.33333,0.40000,0.25000,0.75000,1.00000,0.85714,' +
          '0.80556,0.66667,1,1,1,2',
      );
      expect(lines[3].startsWith('"Robin\'s ""red"" breast",2,')).to.equal(true);
      expect(lines.slice(4)).to.deep.equal(['']);
    });

    it('should leave an undefined value as an empty cell and not quote a bare apostrophe', () => {
      const edge = evaluate(
        new Float32Array([0, 1, 0, 0]),
        new Float32Array([0.3, 0.8, 0.6, 0.1]),
        2,
        ["Robin's", 'B'],
      );
      expect(reportToCsv(edge).split('\n')[2]).to.equal(
        "Robin's,0,0.00000,0.00000,0.00000,0.10000,0.00000,0.00000,0.00000,,,0,1,1,0",
      );
    });

    it('should turn undefined into null in JSON', () => {
      const edge = evaluate(new Float32Array([0, 0]), new Float32Array([0.3, 0.6]), 2, ['C']);
      const json = reportToJson(edge);
      expect(json.classes[0].averagePrecision).to.equal(null);
      expect(json.macro.rocAuc).to.equal(null);
      expect(json.top1).to.equal(null);
      expect(JSON.parse(JSON.stringify(json))).to.deep.equal(json);
    });

    it('should lay out a table with the macro row first and aligned columns', () => {
      const lines = formatReportTable(report).trimEnd().split('\n');
      expect(lines[0]).to.match(/^Class\s+Samples\s+P\s+R\s+F1\s+AP\s+AUROC\s+Thr$/);
      expect(lines[2]).to.match(/^macro\s+5\s+0\.500\s+0\.667\s+0\.533\s+0\.903\s+0\.833\s+0\.40$/);
      expect(lines[4].startsWith('Turdus merula, Blackbird')).to.equal(true);
      expect(new Set(lines.map((l) => l.length)).size).to.equal(1);
    });
  });
});
