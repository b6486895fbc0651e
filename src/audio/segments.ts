/**
 * Cutting a clip into the fixed-length segments an extractor takes, with BirdNET-Analyzer's crop
 * modes. Every segment has exactly `length` samples (zero-padded at its end) and at least
 * `minSeconds` of real audio; a clip shorter than that gives no segment.
 */

export const CROP_MODES = ['center', 'first', 'segments', 'smart'] as const;
export type CropMode = (typeof CROP_MODES)[number];

/** BirdNET's segment length and the least real audio a segment needs, in seconds. */
export const SEGMENT_SECONDS = 3;
export const MIN_SECONDS = 1;

/** At most this many segments are kept by `smart` when the clip has score peaks. */
const SMART_MAX_PEAKS = 5;

export interface CropSettings {
  mode: CropMode;
  /** Seconds shared by neighbouring segments in mode `segments` (and `smart`); 0 <= overlap < 3. */
  overlap: number;
}

export const DEFAULT_CROP: Readonly<CropSettings> = Object.freeze({ mode: 'center', overlap: 0 });

/** One segment: `[length]` samples and where it lies in the clip, in seconds. */
export interface Segment {
  samples: Float32Array;
  start: number;
  end: number;
}

/** Checks crop settings before any file is read, naming the field and the allowed range. */
export function checkCropSettings(s: CropSettings, segmentSeconds = SEGMENT_SECONDS): void {
  if (!(CROP_MODES as readonly string[]).includes(s.mode)) {
    throw new Error(`audio: cropMode: expected one of ${CROP_MODES.join(', ')}, got "${s.mode}"`);
  }
  if (!(s.overlap >= 0 && s.overlap < segmentSeconds)) {
    throw new Error(
      `audio: overlap: expected seconds in [0, ${segmentSeconds}) (0 or more, below the ` +
        `${segmentSeconds} s segment length), got ${s.overlap}`,
    );
  }
}

/**
 * Cuts a clip into segments.
 *
 * @param signal `[samples]` mono at `rate` Hz
 * @param seconds segment length in seconds (3 for BirdNET)
 */
export function cropSegments(
  signal: Float32Array,
  rate: number,
  settings: CropSettings,
  seconds = SEGMENT_SECONDS,
): Segment[] {
  const length = Math.round(seconds * rate);
  const least = Math.round(MIN_SECONDS * rate);
  if (signal.length < least) return [];

  switch (settings.mode) {
    case 'center': {
      const from = Math.max(0, Math.floor((signal.length - length) / 2));
      return [segment(signal, from, length, rate)];
    }
    case 'first':
      return [segment(signal, 0, length, rate)];
    case 'segments':
      return stepped(signal, rate, length, least, settings.overlap);
    case 'smart':
      if (signal.length <= length) return [segment(signal, 0, length, rate)];
      return loudest(stepped(signal, rate, length, least, settings.overlap), rate);
  }
}

/** Segments every `length - overlap` samples; a trailing piece needs `least` real samples. */
function stepped(
  signal: Float32Array,
  rate: number,
  length: number,
  least: number,
  overlap: number,
) {
  const step = length - Math.round(overlap * rate);
  const out: Segment[] = [];
  for (let from = 0; signal.length - from >= least; from += step) {
    out.push(segment(signal, from, length, rate));
    if (from + length >= signal.length) break;
  }
  return out;
}

/** `length` samples from `from`, zero-padded past the end of the clip. */
function segment(signal: Float32Array, from: number, length: number, rate: number): Segment {
  const samples = new Float32Array(length);
  const real = signal.subarray(from, Math.min(signal.length, from + length));
  samples.set(real);
  return { samples, start: from / rate, end: (from + real.length) / rate };
}

/**
 * The segments worth keeping from a long clip (crop mode `smart`): each scored
 * 0.7 * RMS + 0.3 * peak over its real samples, the scores smoothed by a 3-wide moving average
 * (zero beyond the ends), and the segments at local maxima above the mean smoothed score kept, at
 * most 5, highest first (a flat peak counts once, at its middle, as scipy's `find_peaks` has
 * it). With fewer than 2 such peaks: the max(3, trunc(n / 3)) segments of highest smoothed
 * score, in time order.
 */
export function loudest(segments: Segment[], rate: number): Segment[] {
  const scores = segments.map((s) => segmentScore(s, rate));
  const smooth = scores.map(
    (_, i) => ((scores[i - 1] ?? 0) + scores[i] + (scores[i + 1] ?? 0)) / 3,
  );
  const mean = smooth.reduce((a, b) => a + b, 0) / smooth.length;
  const byScore = (a: number, b: number) => smooth[b] - smooth[a] || a - b;

  const peaks = localMaxima(smooth).filter((i) => smooth[i] > mean);
  if (peaks.length >= 2) {
    return peaks
      .sort(byScore)
      .slice(0, SMART_MAX_PEAKS)
      .map((i) => segments[i]);
  }

  const keep = Math.min(segments.length, Math.max(3, Math.trunc(segments.length / 3)));
  const best = smooth
    .map((_, i) => i)
    .sort(byScore)
    .slice(0, keep);
  return best.sort((a, b) => a - b).map((i) => segments[i]);
}

/**
 * Indices of the local maxima of `values`: a value above both neighbours, or a run of equal
 * values above the values on either side of it, taken at its middle (the left one of two).
 * The first and last values are never maxima.
 */
function localMaxima(values: readonly number[]): number[] {
  const out: number[] = [];
  let i = 1;
  while (i < values.length - 1) {
    if (values[i - 1] < values[i]) {
      let end = i;
      while (end + 1 < values.length - 1 && values[end + 1] === values[i]) end++;
      if (values[end + 1] < values[i]) {
        out.push(Math.floor((i + end) / 2));
        i = end + 1;
        continue;
      }
    }
    i++;
  }
  return out;
}

/** 0.7 * RMS + 0.3 * peak amplitude over the segment's real (unpadded) samples. */
export function segmentScore(s: Segment, rate: number): number {
  const real = s.samples.subarray(0, Math.max(1, Math.round((s.end - s.start) * rate)));
  let sum = 0;
  let peak = 0;
  for (const v of real) {
    sum += v * v;
    peak = Math.max(peak, Math.abs(v));
  }
  return 0.7 * Math.sqrt(sum / real.length) + 0.3 * peak;
}
