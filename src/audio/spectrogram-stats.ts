/**
 * The built-in extractor: a fixed, documented vector of statistics of a segment's log-mel
 * spectrogram. It needs no download and gives the same numbers on every machine.
 *
 * Per 3 s segment at 48 kHz: frames of 1024 samples (Hann window), hop 512; power spectrum; 48
 * triangular mel bands (HTK mel scale) from 150 Hz to 15 kHz; L = log10(band power + 1e-10).
 * The level of the segment (the mean of L over bands and frames) is taken out of L, so a recorder's
 * gain does not move the vector, and kept as a value of its own. Then:
 *
 *  - per band, over frames: mean, 2 x standard deviation and maximum of L, and 4 x mean absolute
 *    value and 3 x standard deviation of its change from one frame to the next (48 x 5 values);
 *  - per frame, then mean and standard deviation over frames: 5 x spectral centroid and 10 x
 *    bandwidth (as fractions of the Nyquist frequency), log10(flatness + 1e-6) / 2 (flatness: the
 *    geometric over the arithmetic mean of the power), 5 x the 85 % roll-off (fraction of
 *    Nyquist), 10 x the zero-crossing rate, and (log10 frame energy - level) / 2 (12 values);
 *  - the level itself, divided by 2.
 *
 * 253 values in all. The factors bring each group to a spread of about 1 on real bird recordings,
 * so a linear head trains on the vector as it is.
 */
import FFT from 'fft.js';
import { Extractor } from './extractor';
import { BIRDNET_SAMPLE_RATE } from './decode';
import { SEGMENT_SECONDS } from './segments';

const FRAME = 1024;
const HOP = 512;
const BANDS = 48;
const FMIN = 150;
const FMAX = 15000;
const FLOOR = 1e-10;
const ROLLOFF = 0.85;

/** Vector length of the built-in extractor. */
export const SPECTROGRAM_STATS_DIM = BANDS * 5 + 12 + 1;

export const SPECTROGRAM_STATS_ID = 'spectrogram-stats/1';

/** The built-in extractor, at BirdNET's rate and segment length. */
export function spectrogramStats(): Extractor {
  const window = hann(FRAME);
  const bank = melBank(BIRDNET_SAMPLE_RATE);
  const fft = new FFT(FRAME);
  return {
    id: SPECTROGRAM_STATS_ID,
    sampleRate: BIRDNET_SAMPLE_RATE,
    segmentSeconds: SEGMENT_SECONDS,
    embed(segments) {
      const x = new Float32Array(segments.length * SPECTROGRAM_STATS_DIM);
      segments.forEach((s, i) => x.set(describe(s, window, bank, fft), i * SPECTROGRAM_STATS_DIM));
      return Promise.resolve({ x, dim: SPECTROGRAM_STATS_DIM });
    },
    dispose: () => undefined,
  };
}

/** The feature vector of one segment (see the module comment). */
function describe(signal: Float32Array, window: Float64Array, bank: MelBank, fft: FFT) {
  const frames = Math.max(1, 1 + Math.floor((signal.length - FRAME) / HOP));
  const logMel = new Float64Array(frames * BANDS);
  const shape = new Float64Array(frames * 6);
  const frame = new Float64Array(FRAME);
  const spectrum = fft.createComplexArray() as number[];
  const bins = FRAME / 2 + 1;
  const power = new Float64Array(bins);

  for (let t = 0; t < frames; t++) {
    let crossings = 0;
    for (let i = 0; i < FRAME; i++) {
      const v = signal[t * HOP + i] ?? 0;
      frame[i] = v * window[i];
      if (i > 0 && v >= 0 !== (signal[t * HOP + i - 1] ?? 0) >= 0) crossings++;
    }
    fft.realTransform(spectrum, frame);
    for (let k = 0; k < bins; k++) power[k] = spectrum[2 * k] ** 2 + spectrum[2 * k + 1] ** 2;

    for (let b = 0; b < BANDS; b++) {
      let e = 0;
      for (const [k, w] of bank[b]) e += w * power[k];
      logMel[t * BANDS + b] = Math.log10(e + FLOOR);
    }
    spectralShape(power, crossings / (FRAME - 1), shape.subarray(t * 6, t * 6 + 6));
  }

  const level = mean(logMel);
  for (let i = 0; i < logMel.length; i++) logMel[i] -= level;
  for (let t = 0; t < frames; t++) shape[t * 6 + 5] = (shape[t * 6 + 5] - level) / 2;

  const out = new Float32Array(SPECTROGRAM_STATS_DIM);
  for (let b = 0; b < BANDS; b++) {
    const band = Float64Array.from({ length: frames }, (_, t) => logMel[t * BANDS + b]);
    const change = Float64Array.from({ length: Math.max(1, frames - 1) }, (_, t) =>
      frames > 1 ? band[t + 1] - band[t] : 0,
    );
    out[b] = mean(band);
    out[BANDS + b] = 2 * std(band);
    out[2 * BANDS + b] = Math.max(...band);
    out[3 * BANDS + b] = 4 * mean(change.map(Math.abs));
    out[4 * BANDS + b] = 3 * std(change);
  }
  for (let j = 0; j < 6; j++) {
    const values = Float64Array.from({ length: frames }, (_, t) => shape[t * 6 + j]);
    out[5 * BANDS + 2 * j] = mean(values);
    out[5 * BANDS + 2 * j + 1] = std(values);
  }
  out[SPECTROGRAM_STATS_DIM - 1] = level / 2;
  return out;
}

/** Centroid, bandwidth, flatness, roll-off, zero-crossing rate and log energy of one frame. */
function spectralShape(power: Float64Array, zcr: number, out: Float64Array): void {
  const bins = power.length;
  let total = 0;
  let weighted = 0;
  let logSum = 0;
  for (let k = 0; k < bins; k++) {
    total += power[k];
    weighted += k * power[k];
    logSum += Math.log(power[k] + FLOOR);
  }
  const centroid = total > 0 ? weighted / total : 0;
  let spread = 0;
  for (let k = 0; k < bins; k++) spread += (k - centroid) ** 2 * power[k];
  let cumulative = 0;
  let rolloff = bins - 1;
  for (let k = 0; k < bins; k++) {
    cumulative += power[k];
    if (cumulative >= ROLLOFF * total) {
      rolloff = k;
      break;
    }
  }
  const flatness = Math.exp(logSum / bins) / (total / bins + FLOOR);
  out[0] = (5 * centroid) / (bins - 1);
  out[1] = total > 0 ? (10 * Math.sqrt(spread / total)) / (bins - 1) : 0;
  out[2] = Math.log10(flatness + 1e-6) / 2;
  out[3] = total > 0 ? (5 * rolloff) / (bins - 1) : 0;
  out[4] = 10 * zcr;
  out[5] = Math.log10(total + FLOOR);
}

/** Per band: the FFT bins it covers and their triangular weights. */
type MelBank = [number, number][][];

function melBank(rate: number): MelBank {
  const mel = (f: number) => 2595 * Math.log10(1 + f / 700);
  const hz = (m: number) => 700 * (10 ** (m / 2595) - 1);
  const edges = Array.from({ length: BANDS + 2 }, (_, i) =>
    hz(mel(FMIN) + ((mel(FMAX) - mel(FMIN)) * i) / (BANDS + 1)),
  );
  const binHz = rate / FRAME;
  return Array.from({ length: BANDS }, (_, b) => {
    const [lo, centre, hi] = [edges[b], edges[b + 1], edges[b + 2]];
    const weights: [number, number][] = [];
    for (let k = Math.floor(lo / binHz); k <= Math.ceil(hi / binHz); k++) {
      const f = k * binHz;
      const w = f <= centre ? (f - lo) / (centre - lo) : (hi - f) / (hi - centre);
      if (w > 0) weights.push([k, w]);
    }
    // A band narrower than one bin takes the nearest bin whole.
    if (weights.length === 0) weights.push([Math.round(centre / binHz), 1]);
    return weights;
  });
}

function hann(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

function std(values: ArrayLike<number>): number {
  const m = mean(values);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i] - m) ** 2;
  return Math.sqrt(sum / values.length);
}
