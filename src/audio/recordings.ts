/**
 * From recordings to embeddings: each file decoded, cut into segments and embedded, or taken from
 * the embedding cache when its bytes and the settings are unchanged.
 */
import { readFile } from 'fs/promises';
import { EmbeddingCache, RecordingEmbeddings } from './cache';
import { SignalSettings, checkSignalSettings, signalFromBytes } from './decode';
import { Extractor } from './extractor';
import { CropSettings, DEFAULT_CROP, checkCropSettings, cropSegments } from './segments';

/** How recordings become segments: BirdNET-Analyzer's audio options. */
export interface AudioSettings extends CropSettings {
  /** Playback speed: the file is read as if its rate were `rate * speed`; 1 = unchanged. */
  speed: number;
  /** Lower band limit in Hz; 0 = no high-pass. */
  fmin: number;
  /** Upper band limit in Hz; 15000 = no low-pass. */
  fmax: number;
}

export const DEFAULT_AUDIO: Readonly<AudioSettings> = Object.freeze({
  ...DEFAULT_CROP,
  speed: 1,
  fmin: 0,
  fmax: 15000,
});

/** Checks audio settings before any file is read, naming the field and the allowed range. */
export function checkAudioSettings(settings: AudioSettings, extractor?: Extractor): void {
  checkCropSettings(settings, extractor?.segmentSeconds);
  checkSignalSettings(signalSettings(settings, extractor?.sampleRate ?? 48000));
}

function signalSettings(settings: AudioSettings, sampleRate: number): SignalSettings {
  return { sampleRate, speed: settings.speed, fmin: settings.fmin, fmax: settings.fmax };
}

/** Everything that changes a recording's embeddings, as one string: the cache's settings key. */
export function audioSettingsId(settings: AudioSettings, extractor: Extractor): string {
  const { mode, overlap, speed, fmin, fmax } = settings;
  return [
    extractor.id,
    `rate=${extractor.sampleRate}`,
    `seconds=${extractor.segmentSeconds}`,
    `crop=${mode}`,
    `overlap=${overlap}`,
    `speed=${speed}`,
    `fmin=${fmin}`,
    `fmax=${fmax}`,
  ].join(';');
}

export interface RecordingContext {
  extractor: Extractor;
  settings: AudioSettings;
  cache?: EmbeddingCache;
}

/** What became of one recording. */
export type RecordingOutcome =
  | { kind: 'embedded' | 'cached'; embeddings: RecordingEmbeddings }
  /** The file could not be read or decoded; never cached. */
  | { kind: 'unreadable'; reason: string };

/**
 * The embeddings of one recording: from the cache, or decoded, segmented and embedded (and then
 * cached). A recording too short for any segment gives zero rows, which is an outcome like any
 * other; a file that cannot be read or decoded gives `unreadable` with the reason.
 */
export async function embedRecording(
  path: string,
  context: RecordingContext,
): Promise<RecordingOutcome> {
  const { extractor, settings, cache } = context;
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    return { kind: 'unreadable', reason: (err as Error).message };
  }
  const key = EmbeddingCache.key(bytes, audioSettingsId(settings, extractor));
  const cached = await cache?.get(key);
  if (cached !== undefined) return { kind: 'cached', embeddings: cached };

  let signal: Float32Array;
  try {
    signal = await signalFromBytes(bytes, path, signalSettings(settings, extractor.sampleRate));
  } catch (err) {
    return { kind: 'unreadable', reason: (err as Error).message };
  }
  const segments = cropSegments(signal, extractor.sampleRate, settings, extractor.segmentSeconds);
  const embeddings: RecordingEmbeddings = {
    ...(segments.length === 0
      ? { x: new Float32Array(0), dim: 0 }
      : await extractor.embed(segments.map((s) => s.samples))),
    spans: segments.map(({ start, end }) => ({ start, end })),
  };
  await cache?.put(key, embeddings);
  return { kind: 'embedded', embeddings };
}
