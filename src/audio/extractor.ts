/**
 * What turns audio segments into embeddings: the built-in spectrogram statistics or a TF.js
 * model.
 */
export interface Extractor {
  /**
   * The extractor and every setting that changes its output, e.g. `spectrogram-stats/1`; it names
   * the embeddings in a model's provenance and keys the embedding cache.
   */
  readonly id: string;
  /** Rate of the signal it takes, in Hz. */
  readonly sampleRate: number;
  /** Length of the segments it takes, in seconds. */
  readonly segmentSeconds: number;
  /**
   * Embeds segments.
   *
   * @param segments each `[sampleRate * segmentSeconds]` samples
   * @returns `[segments.length, dim]` float32, row-major, and the vector length
   */
  embed(segments: readonly Float32Array[]): Promise<{ x: Float32Array; dim: number }>;
  /** Frees what the extractor holds (a model's tensors); it is not used again. */
  dispose(): void;
}
