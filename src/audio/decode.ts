/**
 * From an audio file to the signal an extractor takes: decoded by audio-decode (wav, flac, mp3,
 * ogg, m4a, wma, aiff), mixed to mono, resampled by libsamplerate to the extractor's rate as if the
 * file's own rate were `rate * speed`, then band-passed by an order-5 Butterworth filter as
 * BirdNET-Analyzer does.
 */
import { readFile } from 'fs/promises';
import { extname } from 'path';
import { lazyEsm } from '../esm';

/** Extensions of audio files in a training folder, as BirdNET-Analyzer lists them (any case). */
export const AUDIO_EXTENSIONS = ['wav', 'flac', 'mp3', 'ogg', 'm4a', 'wma', 'aiff', 'aif'] as const;

/** The rate BirdNET models listen at, in Hz. */
export const BIRDNET_SAMPLE_RATE = 48000;

/** Band-pass limits that mean "no filter", in Hz (BirdNET-Analyzer's defaults). */
export const FMIN_OFF = 0;
export const FMAX_OFF = 15000;

/** Butterworth order of the band-pass, as in BirdNET-Analyzer. */
const FILTER_ORDER = 5;

export interface SignalSettings {
  /** Rate of the signal handed to the extractor, in Hz. */
  sampleRate: number;
  /** Playback speed: the file is read as if its rate were `rate * speed`; 1 = unchanged. */
  speed: number;
  /** Lower band limit in Hz; `FMIN_OFF` = no high-pass. */
  fmin: number;
  /** Upper band limit in Hz; `FMAX_OFF` = no low-pass. */
  fmax: number;
}

export const DEFAULT_SIGNAL: Readonly<SignalSettings> = Object.freeze({
  sampleRate: BIRDNET_SAMPLE_RATE,
  speed: 1,
  fmin: FMIN_OFF,
  fmax: FMAX_OFF,
});

export function isAudioFile(name: string): boolean {
  const ext = extname(name).slice(1).toLowerCase();
  return !name.startsWith('.') && (AUDIO_EXTENSIONS as readonly string[]).includes(ext);
}

/** Checks signal settings, naming the field and the allowed range. */
export function checkSignalSettings(s: SignalSettings): void {
  if (!(s.sampleRate > 0) || !Number.isInteger(s.sampleRate)) {
    throw new Error(
      `audio: sampleRate: expected a positive whole number of Hz, got ${s.sampleRate}`,
    );
  }
  if (!(s.speed > 0) || !Number.isFinite(s.speed)) {
    throw new Error(`audio: speed: expected a number above 0, got ${s.speed}`);
  }
  if (!(s.fmin >= 0) || !(s.fmax > 0) || !(s.fmin < s.fmax)) {
    throw new Error(
      `audio: fmin, fmax: expected 0 <= fmin < fmax (Hz), got fmin ${s.fmin}, fmax ${s.fmax}`,
    );
  }
}

/** A decoded file before it is turned into the extractor's signal. */
export interface DecodedAudio {
  channelData: Float32Array[];
  sampleRate: number;
}

interface DecodeModule {
  default: (data: Uint8Array) => Promise<DecodedAudio>;
}

const loadDecoder = lazyEsm<DecodeModule>('audio-decode');

/** Decodes an audio file; the error names the file and says why it gave no audio. */
export async function decodeFile(path: string): Promise<DecodedAudio> {
  return decodeBytes(await readFile(path), path);
}

/** Decodes the bytes of an audio file; `path` names it in errors. */
export async function decodeBytes(bytes: Uint8Array, path: string): Promise<DecodedAudio> {
  if (bytes.length === 0) throw new Error(`${path}: empty file (0 bytes)`);

  const { default: decode } = await loadDecoder();
  let audio: DecodedAudio;
  try {
    audio = await decode(bytes);
  } catch (err) {
    throw new Error(`${path}: cannot decode audio: ${(err as Error).message}`);
  }
  if (audio.channelData.length === 0 || audio.channelData[0].length === 0) {
    throw new Error(`${path}: the file decodes to no samples`);
  }
  return audio;
}

/** The channels' mean, sample by sample. */
export function mixToMono(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0];
  const out = new Float32Array(channels[0].length);
  for (const channel of channels) {
    for (let i = 0; i < out.length; i++) out[i] += channel[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= channels.length;
  return out;
}

interface Resampler {
  simple(input: Float32Array): Float32Array;
  destroy(): void;
}

interface SampleRateModule {
  create(
    channels: number,
    from: number,
    to: number,
    options: { converterType: number },
  ): Promise<Resampler>;
  ConverterType: { SRC_SINC_FASTEST: number };
}

/**
 * Resamples a mono signal with libsamplerate's band-limited sinc converter (its fastest one,
 * 97 dB signal-to-noise), rates in Hz.
 */
export async function resample(signal: Float32Array, from: number, to: number) {
  if (from === to) return signal;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { create, ConverterType } = require('@alexanderolsen/libsamplerate-js') as SampleRateModule;
  const converter = await create(1, from, to, { converterType: ConverterType.SRC_SINC_FASTEST });
  try {
    return converter.simple(signal);
  } finally {
    converter.destroy();
  }
}

interface Section {
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
}

interface FilterModule {
  butterworth(order: number, fc: number | number[], fs: number, type: string): Section[];
  filter(data: Float32Array, params: { coefs: Section[] }): Float32Array;
}

const loadFilters = lazyEsm<FilterModule>('digital-filter');

/**
 * Applies BirdNET-Analyzer's band limits: an order-5 Butterworth high-pass when only fmin is set,
 * low-pass when only fmax is set, band-pass when both are, nothing at the defaults; one causal
 * pass, as `lfilter` does. Returns a new array.
 */
export async function bandPass(signal: Float32Array, rate: number, fmin: number, fmax: number) {
  const high = fmin > FMIN_OFF;
  const low = fmax < FMAX_OFF && fmax < rate / 2;
  if (!high && !low) return signal;

  const { butterworth, filter } = await loadFilters();
  const coefs =
    high && low
      ? butterworth(FILTER_ORDER, [fmin, fmax], rate, 'bandpass')
      : butterworth(FILTER_ORDER, high ? fmin : fmax, rate, high ? 'highpass' : 'lowpass');
  return filter(Float32Array.from(signal), { coefs });
}

/**
 * Reads an audio file as the mono signal an extractor takes: `[samples]` at
 * `settings.sampleRate`.
 */
export async function readSignal(path: string, settings: SignalSettings): Promise<Float32Array> {
  return signalFromBytes(await readFile(path), path, settings);
}

/** {@link readSignal} on bytes already read; `path` names the file in errors. */
export async function signalFromBytes(
  bytes: Uint8Array,
  path: string,
  settings: SignalSettings,
): Promise<Float32Array> {
  const audio = await decodeBytes(bytes, path);
  const mono = mixToMono(audio.channelData);
  const resampled = await resample(mono, audio.sampleRate * settings.speed, settings.sampleRate);
  return bandPass(resampled, settings.sampleRate, settings.fmin, settings.fmax);
}
