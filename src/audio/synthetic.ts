/**
 * Synthetic bird-like recordings, so that the demo and the example flows can run the whole audio
 * path (decode, segment, embed, train) on a fresh install without shipping real recordings.
 *
 * Each class of the demo sings its own call type (a whistle, a chirp, a trill, a two-note call)
 * over a quiet background of pink or white noise; `Noise` holds background only. A clip's seed
 * sets where the calls fall, how many there are, their pitch (within +-5 %), their loudness
 * (peaks of -20 to -6 dBFS) and the level of the background, so clips of one class differ as
 * recordings of one species do. Every component stays below 7 kHz, under the Nyquist frequency of
 * 16 kHz files. The same seed gives the same samples and the same bytes.
 */
import { mkdir, rm, writeFile } from 'fs/promises';
import { join } from 'path';
import { WaveFile } from 'wavefile';
import { DEMO_CLASSES } from '../demo';
import { Random } from '../random';

/** The kinds of sound a synthetic clip holds; `noise` is background only. */
export const SYNTHETIC_CALL_KINDS = ['whistle', 'chirp', 'trill', 'two-note', 'noise'] as const;
export type SyntheticCallKind = (typeof SYNTHETIC_CALL_KINDS)[number];

/** A class folder of the synthetic set: one of the demo's classes, or `Noise`. */
export type SyntheticClass = (typeof DEMO_CLASSES)[number] | 'Noise';

export interface SyntheticCallType {
  kind: SyntheticCallKind;
  /** What the class sounds like, in words a README can quote. */
  description: string;
}

/**
 * The call type of each class folder, in the order the folders are written. The class names are
 * spelled out, not read from `DEMO_CLASSES` at load time, so that `demo.ts` may import this
 * module without the import cycle seeing an unfinished `DEMO_CLASSES`; `satisfies` keeps the
 * names equal to the demo's.
 */
export const SYNTHETIC_CALL_TYPES = {
  'Synthetica alba_White Synthetic Warbler': {
    kind: 'whistle',
    description:
      'steady whistles near 2.8 kHz of 0.4 to 0.8 s, with a slight vibrato of 5 to 7 Hz ' +
      'and a faint second harmonic',
  },
  'Synthetica rubra_Red Synthetic Warbler': {
    kind: 'chirp',
    description: 'short chirps sweeping down from 6.2 to 3.2 kHz in 0.2 to 0.35 s',
  },
  'Fictus cantor_Singing Fiction Finch': {
    kind: 'trill',
    description: 'trills of 0.8 to 1.4 s: a 4.4 kHz tone broken into 22 to 28 pulses a second',
  },
  'Fictus minor_Lesser Fiction Finch': {
    kind: 'two-note',
    description:
      'phrases of 2 to 4 pairs of notes of 0.12 to 0.16 s, a high one near 3.6 kHz, ' +
      'then a low one near 2.4 kHz',
  },
  Noise: {
    kind: 'noise',
    description: 'background only: pink or white noise, some clips with low rumble and gusts',
  },
} as const satisfies Readonly<Record<SyntheticClass, SyntheticCallType>>;

/** Every frequency a clip holds stays below this, in Hz. */
export const SYNTHETIC_MAX_HZ = 7000;

/**
 * A call gets a second harmonic only if it stays below this, in Hz: the skirt of a short tone
 * reaches some 100 Hz past it, and a harmonic must not leak past {@link SYNTHETIC_MAX_HZ}. It also
 * gives each call type one timbre, whatever its pitch: the whistle and the low note of the
 * two-note call always have a harmonic, the others never.
 */
const HARMONIC_MAX_HZ = 6500;

export interface SynthesisOptions {
  /** The clip's seed: the same seed (and kind) gives the same samples. */
  seed: number | string;
  /** Length of the clip in seconds. */
  seconds: number;
  /** Sample rate in Hz; at least 16000, so that all components lie below the Nyquist frequency. */
  sampleRate: number;
}

/** Peaks of the calls, in dBFS. */
const CALL_PEAK_DB: Range = [-20, -6];
/** RMS of the background under the calls, in dBFS: audible in the spectrogram, well below them. */
const BACKGROUND_DB: Range = [-60, -42];
/** RMS of the background in `Noise` clips, in dBFS: louder, as a clip kept for its noise is. */
const NOISE_CLIP_DB: Range = [-45, -25];
/** Spread of the pitch of a clip around its call type's frequencies (+-5 %). */
const PITCH_SPREAD = 0.05;
/** Spread of one call's pitch around its clip's (+-1 %). */
const CALL_PITCH_SPREAD = 0.01;

type Range = readonly [number, number];

/**
 * A synthetic recording of one call type: `[seconds * sampleRate]` mono samples in [-1, 1].
 * Calls start 0.05 to 0.5 s into the clip and follow each other with gaps of under a second, so
 * every 3 s segment holds some; a clip too short for a whole call holds the start of one, unless
 * it ends before the first call begins.
 */
export function synthesizeRecording(
  kind: SyntheticCallKind,
  options: SynthesisOptions,
): Float32Array {
  checkSynthesisOptions(kind, options);
  const random = new Random(`synthetic/${kind}/${options.seed}`);
  const rate = options.sampleRate;
  const out = new Float64Array(Math.round(options.seconds * rate));

  if (kind !== 'noise') {
    addCalls(out, kind, rate, random.derive('calls'));
    scaleToPeak(out, dbToGain(between(random, CALL_PEAK_DB)));
  }

  addBackground(out, kind === 'noise', rate, random.derive('background'));
  return Float32Array.from(out, (v) => Math.max(-1, Math.min(1, v)));
}

export interface SyntheticSetOptions {
  /** Seed of the set, 1 by default; clip k of a class is synthesized with the seed `<seed>/<k>`. */
  seed?: number;
  /** Clips per class folder, 6 by default. */
  clipsPerClass?: number;
  /** Sample rate of the files in Hz, 16000 by default, so readers resample them to 48 kHz. */
  sampleRate?: number;
  /** Length of each clip in seconds, 6 by default: two 3 s segments in crop mode `segments`. */
  seconds?: number;
}

/**
 * Writes a BirdNET-Analyzer training folder of synthetic recordings: removes `dir` if present,
 * then writes `<class>/clip01.wav`, `clip02.wav`, ... (16-bit PCM mono WAV) for each class of
 * {@link SYNTHETIC_CALL_TYPES}. Returns the paths written, folder by folder.
 */
export async function writeSyntheticRecordings(
  dir: string,
  options: SyntheticSetOptions = {},
): Promise<string[]> {
  const { seed = 1, clipsPerClass = 6, sampleRate = 16000, seconds = 6 } = options;
  if (!(Number.isInteger(clipsPerClass) && clipsPerClass > 0)) {
    throw new Error(
      `synthetic: clipsPerClass: expected a whole number above 0, got ${clipsPerClass}`,
    );
  }
  checkSynthesisOptions('noise', { seed, seconds, sampleRate });

  await rm(dir, { recursive: true, force: true });
  const paths: string[] = [];
  for (const folder of [...DEMO_CLASSES, 'Noise'] as const) {
    await mkdir(join(dir, folder), { recursive: true });
    for (let k = 1; k <= clipsPerClass; k++) {
      const signal = synthesizeRecording(SYNTHETIC_CALL_TYPES[folder].kind, {
        seed: `${seed}/${k}`,
        seconds,
        sampleRate,
      });
      const path = join(dir, folder, `clip${String(k).padStart(2, '0')}.wav`);
      await writeFile(path, encodeWav(signal, sampleRate));
      paths.push(path);
    }
  }
  return paths;
}

/** A 16-bit PCM mono WAV file of `signal` (samples in [-1, 1]) at `rate` Hz. */
export function encodeWav(signal: Float32Array, rate: number): Buffer {
  const pcm = Int16Array.from(signal, (v) => Math.round(32767 * Math.max(-1, Math.min(1, v))));
  const wav = new WaveFile();
  wav.fromScratch(1, rate, '16', pcm);
  return Buffer.from(wav.toBuffer());
}

function checkSynthesisOptions(kind: string, o: SynthesisOptions): void {
  if (!(SYNTHETIC_CALL_KINDS as readonly string[]).includes(kind)) {
    throw new Error(
      `synthetic: kind: expected one of ${SYNTHETIC_CALL_KINDS.join(', ')}, got "${kind}"`,
    );
  }
  if (!(o.seconds > 0) || !Number.isFinite(o.seconds)) {
    throw new Error(`synthetic: seconds: expected a number above 0, got ${o.seconds}`);
  }
  if (!Number.isInteger(o.sampleRate) || o.sampleRate < 16000) {
    throw new Error(
      `synthetic: sampleRate: expected a whole number of Hz of at least 16000, got ${o.sampleRate}`,
    );
  }
}

/** One call of a call type: how long it lasts, the pause after it, and how it sounds. */
interface CallShape {
  /** Length of a call in seconds. */
  duration: Range;
  /** Seconds of silence before the next call. */
  gap: Range;
  /** Adds one call to `c.out`. */
  render(call: Call): void;
}

/** One call to render: where it goes and how it varies from the call type's design. */
interface Call {
  /** The clip, `[samples]`, that the call is added to. */
  out: Float64Array;
  /** First sample of the call. */
  from: number;
  /** Length of the call in seconds. */
  seconds: number;
  /** Sample rate in Hz. */
  rate: number;
  /** Factor on the call type's frequencies, about 1. */
  pitch: number;
  /** Factor on the amplitude, at most 1. */
  gain: number;
  random: Random;
}

const SHAPES: Record<Exclude<SyntheticCallKind, 'noise'>, CallShape> = {
  whistle: {
    duration: [0.4, 0.8],
    gap: [0.25, 0.7],
    render(c) {
      const hz = 2800 * c.pitch;
      const vibratoHz = between(c.random, [5, 7]);
      tone(c, c.seconds, 0.04, (t) => hz * (1 + 0.015 * Math.sin(2 * Math.PI * vibratoHz * t)));
    },
  },
  chirp: {
    duration: [0.2, 0.35],
    gap: [0.15, 0.45],
    render(c) {
      const [high, low] = [6200 * c.pitch, 3200 * c.pitch];
      // An exponential sweep falls by the same musical interval each instant, as chirps do.
      tone(c, c.seconds, 0.015, (t) => high * (low / high) ** (t / c.seconds));
    },
  },
  trill: {
    duration: [0.8, 1.4],
    gap: [0.3, 0.8],
    render(c) {
      const hz = 4400 * c.pitch;
      const pulsesPerSecond = between(c.random, [22, 28]);
      tone(
        c,
        c.seconds,
        0.02,
        () => hz,
        (t) => Math.sin(Math.PI * pulsesPerSecond * t) ** 6,
      );
    },
  },
  'two-note': {
    // Room for 2 to 4 pairs of notes, a pair lasting 0.34 to 0.42 s.
    duration: [0.76, 1.52],
    gap: [0.4, 0.9],
    render(c) {
      const note = between(c.random, [0.12, 0.16]);
      const pair = 2 * note + 2 * 0.05;
      const pairs = Math.min(4, Math.max(2, Math.round(c.seconds / pair)));
      for (let p = 0; p < pairs; p++) {
        for (const [i, hz] of [3600, 2400].entries()) {
          const from = c.from + Math.round((p * pair + i * (note + 0.05)) * c.rate);
          tone({ ...c, from }, note, 0.015, () => hz * c.pitch);
        }
      }
    },
  },
};

/** Lays calls along the clip, one after another with a random gap, until the clip is full. */
function addCalls(out: Float64Array, kind: keyof typeof SHAPES, rate: number, random: Random) {
  const shape = SHAPES[kind];
  const clipSeconds = out.length / rate;
  const pitch = 1 + PITCH_SPREAD * (2 * random.uniform() - 1);

  let t = between(random, [0.05, 0.5]);
  for (let count = 0; t < clipSeconds; count++) {
    const seconds = between(random, shape.duration);
    if (count > 0 && t + seconds > clipSeconds - 0.05) break;
    shape.render({
      out,
      from: Math.round(t * rate),
      seconds,
      rate,
      pitch: pitch * (1 + CALL_PITCH_SPREAD * (2 * random.uniform() - 1)),
      // Birds call from different distances, so calls of one clip differ by a few dB.
      gain: between(random, [0.6, 1]),
      random,
    });
    t += seconds + between(random, shape.gap);
  }
}

/**
 * Adds a tone of instantaneous frequency `hz(t)` (Hz, t in seconds from the call's start) to
 * `c.out`, shaped by raised-cosine ramps of `ramp` seconds and by `amplitude(t)`; a second
 * harmonic a fifth as loud joins when it stays below {@link HARMONIC_MAX_HZ} all call long.
 */
function tone(
  c: Call,
  seconds: number,
  ramp: number,
  hz: (t: number) => number,
  amplitude: (t: number) => number = () => 1,
): void {
  const samples = Math.min(Math.round(seconds * c.rate), c.out.length - c.from);
  // Decided for the whole call: a harmonic switched on mid-sweep would click across the spectrum.
  let top = 0;
  for (let i = 0; i < samples; i++) top = Math.max(top, hz(i / c.rate));
  const harmonic = 2 * top < HARMONIC_MAX_HZ ? 0.2 : 0;

  let phase = 2 * Math.PI * c.random.uniform();
  for (let i = 0; i < samples; i++) {
    const t = i / c.rate;
    phase += (2 * Math.PI * hz(t)) / c.rate;
    const edge = Math.min(1, t / ramp, (seconds - t) / ramp);
    const envelope = Math.sin((Math.PI / 2) * edge) ** 2 * amplitude(t) * c.gain;
    c.out[c.from + i] += envelope * (Math.sin(phase) + harmonic * Math.sin(2 * phase));
  }
}

/**
 * Adds background noise: pink (7 in 10 clips) or white at a random level; `Noise` clips are
 * louder and may carry low rumble below about 150 Hz and slow gusts of level.
 */
function addBackground(out: Float64Array, noiseClip: boolean, rate: number, random: Random) {
  const gauss = gaussian(random);
  const noise =
    random.uniform() < 0.7 ? pinkNoise(out.length, gauss) : whiteNoise(out.length, gauss);
  scaleToRms(noise, dbToGain(between(random, noiseClip ? NOISE_CLIP_DB : BACKGROUND_DB)));

  if (noiseClip && random.uniform() < 0.5) {
    const gustHz = between(random, [0.2, 1]);
    const depth = between(random, [0.3, 0.8]);
    const start = 2 * Math.PI * random.uniform();
    for (let i = 0; i < noise.length; i++) {
      noise[i] *= 1 - depth * (0.5 + 0.5 * Math.sin(start + (2 * Math.PI * gustHz * i) / rate));
    }
  }
  if (noiseClip && random.uniform() < 0.5) {
    const rumble = lowPass(whiteNoise(out.length, gauss), between(random, [60, 150]), rate);
    scaleToRms(rumble, dbToGain(between(random, [-40, -25])));
    for (let i = 0; i < noise.length; i++) noise[i] += rumble[i];
  }

  for (let i = 0; i < out.length; i++) out[i] += noise[i];
}

/** Standard normal numbers from `random` (Box-Muller). */
function gaussian(random: Random): () => number {
  return () => {
    const u = 1 - random.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.uniform());
  };
}

function whiteNoise(length: number, gauss: () => number): Float64Array {
  return Float64Array.from({ length }, gauss);
}

/** Noise falling by about 3 dB per octave: white noise through Paul Kellet's pinking filter. */
function pinkNoise(length: number, gauss: () => number): Float64Array {
  const b = [0, 0, 0, 0, 0, 0, 0];
  return Float64Array.from({ length }, () => {
    const w = gauss();
    b[0] = 0.99886 * b[0] + w * 0.0555179;
    b[1] = 0.99332 * b[1] + w * 0.0750759;
    b[2] = 0.969 * b[2] + w * 0.153852;
    b[3] = 0.8665 * b[3] + w * 0.3104856;
    b[4] = 0.55 * b[4] + w * 0.5329522;
    b[5] = -0.7616 * b[5] - w * 0.016898;
    const v = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
    b[6] = w * 0.115926;
    return v;
  });
}

/** Two one-pole low-pass passes at `hz` (a 12 dB per octave roll-off), in place. */
function lowPass(signal: Float64Array, hz: number, rate: number): Float64Array {
  const a = Math.exp((-2 * Math.PI * hz) / rate);
  for (let pass = 0; pass < 2; pass++) {
    let y = 0;
    for (let i = 0; i < signal.length; i++) signal[i] = y = (1 - a) * signal[i] + a * y;
  }
  return signal;
}

function scaleToPeak(signal: Float64Array, peak: number): void {
  let max = 0;
  for (const v of signal) max = Math.max(max, Math.abs(v));
  if (max > 0) for (let i = 0; i < signal.length; i++) signal[i] *= peak / max;
}

function scaleToRms(signal: Float64Array, rms: number): void {
  let sum = 0;
  for (const v of signal) sum += v * v;
  const current = Math.sqrt(sum / signal.length);
  if (current > 0) for (let i = 0; i < signal.length; i++) signal[i] *= rms / current;
}

function dbToGain(db: number): number {
  return 10 ** (db / 20);
}

function between(random: Random, [low, high]: Range): number {
  return low + (high - low) * random.uniform();
}
