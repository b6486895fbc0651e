import { Extractor } from './extractor';
import { modelExtractor } from './model-extractor';
import { spectrogramStats } from './spectrogram-stats';

/** The name of the built-in extractor, as settings give it. */
export const BUILT_IN_EMBEDDER = 'spectrogram-stats';

/** Which extractor turns segments into embeddings. */
export interface EmbedderSettings {
  /** `spectrogram-stats` (built in, the default) or the path of a TF.js model's `model.json`. */
  embedder?: string;
  /** Rate the model takes, in Hz; default 48000. */
  modelSampleRate?: number;
  /** Segment length the model takes, in seconds; default 3. */
  modelInputSeconds?: number;
  /** The layer (layers model) or node (graph model) whose output is the embedding. */
  modelOutput?: string;
  /** A module that registers the model's custom layer classes when it is loaded. */
  customLayers?: string;
}

/** The extractor that `settings` name; the caller disposes it. */
export async function createExtractor(settings: EmbedderSettings = {}): Promise<Extractor> {
  const name = settings.embedder ?? BUILT_IN_EMBEDDER;
  if (name === BUILT_IN_EMBEDDER || name === '') return spectrogramStats();
  return modelExtractor({
    modelPath: name,
    sampleRate: settings.modelSampleRate,
    inputSeconds: settings.modelInputSeconds,
    output: settings.modelOutput,
    customLayers: settings.customLayers,
  });
}
