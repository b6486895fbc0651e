import { expect } from 'chai';
import {
  confusionMatrix,
  confusionSvg,
  precisionRecallPoints,
  precisionRecallSvg,
  renderSvg,
  trainingCurvesSvg,
} from '../src/evaluate/plots';
import { EpochStats } from '../src/train/trainer';

// Case 17: labels 1,0,1,1,0,0,1,0 with scores 0.9 ... 0.2; average precision 0.74702.
const CASE_LABELS = [1, 0, 1, 1, 0, 0, 1, 0];
const CASE_SCORES = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2];

/**
 * Two classes over those eight rows: A is case 17, B ranks its positives perfectly. Row-major
 * [rows, 2]. Top-1: rows 0, 2, 3 are A and predicted A; row 6 is A but B scores higher (0.4 > 0.3);
 * rows 1, 4, 5, 7 are B and predicted B.
 */
const Y = Float32Array.from(CASE_LABELS.flatMap((a) => [a, 1 - a]));
const B_SCORES = [0.1, 0.9, 0.2, 0.3, 0.8, 0.7, 0.4, 0.6];
const SCORES = Float32Array.from(CASE_SCORES.flatMap((a, r) => [a, B_SCORES[r]]));

function history(): EpochStats[] {
  return [1, 2, 3].map((epoch) => ({
    epoch,
    epochs: 3,
    loss: 1 / epoch,
    valLoss: 1.5 / epoch,
    valAuprc: 0.5 + epoch / 10,
    learningRate: 1e-4,
    seconds: 0.1,
    best: true,
  }));
}

function expectSvg(svg: string): void {
  expect(svg.startsWith('<svg')).to.equal(true, svg.slice(0, 80));
  expect(svg.trimEnd().endsWith('</svg>')).to.equal(true);
}

describe('plots', () => {
  describe('precisionRecallPoints', () => {
    it('should give one point per distinct score up to full recall (case 17)', () => {
      const points = precisionRecallPoints(CASE_LABELS, CASE_SCORES);

      // By hand: 4 positives; after 0.9: 1/1, R 1/4; 0.8: 1/2; 0.7: 2/3, R 2/4; 0.6: 3/4, R 3/4;
      // 0.55: 3/5; 0.4: 3/6; 0.3: 4/7, R 1 (full recall: the curve ends, 0.2 is not a point).
      const expected = [
        [Infinity, 1, 0],
        [0.9, 1, 0.25],
        [0.8, 0.5, 0.25],
        [0.7, 2 / 3, 0.5],
        [0.6, 3 / 4, 0.75],
        [0.55, 3 / 5, 0.75],
        [0.4, 3 / 6, 0.75],
        [0.3, 4 / 7, 1],
      ];
      expect(points).to.have.length(expected.length);
      points.forEach((p, i) => {
        const [threshold, precision, recall] = expected[i];
        expect(p.threshold).to.equal(threshold);
        expect(p.precision).to.be.closeTo(precision, 1e-12);
        expect(p.recall).to.be.closeTo(recall, 1e-12);
      });

      // The area under the steps is the average precision of case 17.
      let area = 0;
      for (let i = 1; i < points.length; i++) {
        area += (points[i].recall - points[i - 1].recall) * points[i].precision;
      }
      expect(area).to.be.closeTo(0.74702, 1e-5);
    });

    it('should treat tied scores as one threshold', () => {
      // Labels 0, 1, 1 with scores 0.5, 0.9, 0.5: at 0.9 one positive; at 0.5 two of three.
      const points = precisionRecallPoints([0, 1, 1], [0.5, 0.9, 0.5]);
      expect(points.map((p) => [p.threshold, p.precision, p.recall])).to.deep.equal([
        [Infinity, 1, 0],
        [0.9, 1, 0.5],
        [0.5, 2 / 3, 1],
      ]);
    });

    it('should read labels as the metrics do: -1 and 0.4 are negative, 0.9 positive', () => {
      const points = precisionRecallPoints([-1, 0.4, 0.9], [0.9, 0.8, 0.7]);
      expect(points.slice(1).map((p) => p.precision)).to.deep.equal([0, 0, 1 / 3]);
      expect(points[points.length - 1].recall).to.equal(1);
    });

    it('should give no curve for a class without positives and refuse NaN', () => {
      expect(precisionRecallPoints([0, 0], [0.1, 0.2])).to.deep.equal([]);
      expect(() => precisionRecallPoints([1, 0], [NaN, 0.2])).to.throw(/scores\[0\] is NaN/);
      expect(() => precisionRecallPoints([1, 0], [0.2])).to.throw(/differ/);
    });
  });

  describe('confusionMatrix', () => {
    it('should count top-1 predictions against the true class of single-label rows', () => {
      const m = confusionMatrix(Y, SCORES, 8, 2);
      expect(m.counts).to.deep.equal([
        [3, 1],
        [0, 4],
      ]);
      expect(m.rows).to.equal(8);
    });

    it('should skip rows with several labels or none, and let the first class win ties', () => {
      const y = [1, 1, 0, 0, 0, 1, -1, 1];
      const scores = [0.9, 0.1, 0.9, 0.1, 0.5, 0.5, 0.2, 0.3];
      const m = confusionMatrix(y, scores, 4, 2);
      // Row 0 has two labels, row 1 none: skipped. Row 2 (B) ties: A wins. Row 3 (B, -1 at A): B.
      expect(m.counts).to.deep.equal([
        [0, 0],
        [1, 1],
      ]);
      expect(m.rows).to.equal(2);
    });
  });

  describe('charts', () => {
    it('should draw training curves with their axis titles and series', async () => {
      const svg = await trainingCurvesSvg(history());
      expectSvg(svg);
      for (const text of ['epoch', 'loss', 'val_loss', 'validation AUPRC', 'Training curves']) {
        expect(svg).to.include(text);
      }
    });

    it('should draw training curves without validation values', async () => {
      const svg = await trainingCurvesSvg(history().map((e) => ({ ...e, valLoss: undefined })));
      expectSvg(svg);
      expect(svg).not.to.include('val_loss');
    });

    it('should draw a precision-recall line per class named with its average precision', async () => {
      const svg = await precisionRecallSvg(Y, SCORES, 8, ['Anura', 'Bufo']);
      expectSvg(svg);
      // A: case 17, AP 0.74702; B: its positives score 0.6-0.9, its negatives 0.1-0.4: AP 1.
      expect(svg).to.include('Anura (AP 0.747)');
      expect(svg).to.include('Bufo (AP 1.000)');
      expect(svg).to.include('recall');
      expect(svg).to.include('precision');
    });

    it('should leave a class without positive rows out of the precision-recall chart', async () => {
      const y = Float32Array.from([1, 0, 0, 0]);
      const svg = await precisionRecallSvg(y, Float32Array.from([0.9, 0.2, 0.3, 0.1]), 2, [
        'seen',
        'unseen',
      ]);
      expect(svg).to.include('seen (AP 1.000)');
      expect(svg).not.to.include('unseen');
    });

    it('should draw the confusion matrix with counts and both axes', async () => {
      const svg = await confusionSvg(Y, SCORES, 8, ['Anura', 'Bufo']);
      expectSvg(svg);
      for (const text of [
        'Anura',
        'Bufo',
        'predicted class',
        'true class',
        '8 single-label rows',
      ]) {
        expect(svg).to.include(text);
      }
      // The cell texts: 3, 1, 0 and 4.
      for (const count of ['>3<', '>1<', '>0<', '>4<']) expect(svg).to.include(count);
    });

    it('should escape labels that are markup', async () => {
      const svg = await confusionSvg(Y, SCORES, 8, ['<A&B>', 'C']);
      expect(svg).to.include('&lt;A&amp;B&gt;');
      expect(svg).not.to.include('<A&B>');
    });

    it('should fetch nothing: a chart that names a URL is refused', async () => {
      const err = await renderSvg({
        data: { url: 'http://127.0.0.1:9/data.json' },
        mark: 'point',
        encoding: { x: { field: 'a', type: 'quantitative' } },
      }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/inline.*127\.0\.0\.1:9/);
    });

    it('should refuse scores that do not fit the labels', async () => {
      const err = await precisionRecallSvg(Y, SCORES, 7, ['A', 'B']).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/7 rows x 2 classes/);
    });
  });
});
