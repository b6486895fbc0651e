/**
 * The embedding cache: the embeddings of one recording under one set of settings, kept on disk so
 * that a file whose bytes and settings are unchanged is never decoded or embedded again, across
 * runs and restarts.
 *
 * One entry per file: `<key>.json`, the key a SHA-256 of the recording's bytes and of everything
 * that changes its embeddings (extractor, crop and signal settings). An entry is written to a
 * temporary name and renamed into place, so a process that dies while writing leaves either the
 * whole entry or none; an entry that does not parse is read as missing and written again. Only
 * successful embeddings are stored: a file that failed to decode is tried again on the next load.
 */
import { createHash } from 'crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'fs/promises';
import { join } from 'path';

const FORMAT = 'custom-classifier-embeddings/1';

/** The embeddings of one recording: `[spans.length, dim]` float32 and each segment's time span. */
export interface RecordingEmbeddings {
  x: Float32Array;
  dim: number;
  /** Start and end of each segment in the recording, in seconds. */
  spans: { start: number; end: number }[];
}

interface Entry {
  format: string;
  dim: number;
  spans: [number, number][];
  /** The float32 values, little-endian, base64. */
  x: string;
}

export class EmbeddingCache {
  private made: Promise<unknown> | undefined;

  /** @param dir the cache folder; created on the first write */
  constructor(readonly dir: string) {}

  /** The key of a recording's bytes under the settings that `settingsId` names. */
  static key(bytes: Uint8Array, settingsId: string): string {
    return createHash('sha256').update(settingsId).update('\0').update(bytes).digest('hex');
  }

  /** The entry under `key`, or undefined when there is none or it cannot be read. */
  async get(key: string): Promise<RecordingEmbeddings | undefined> {
    let entry: Entry;
    try {
      entry = JSON.parse(await readFile(this.path(key), 'utf8')) as Entry;
    } catch {
      return undefined;
    }
    if (entry.format !== FORMAT || !Number.isInteger(entry.dim) || !Array.isArray(entry.spans)) {
      return undefined;
    }
    const bytes = Buffer.from(entry.x, 'base64');
    if (bytes.length !== entry.spans.length * entry.dim * 4) return undefined;
    const x = new Float32Array(bytes.length / 4);
    Buffer.from(x.buffer).set(bytes);
    return { x, dim: entry.dim, spans: entry.spans.map(([start, end]) => ({ start, end })) };
  }

  /** Stores an entry, whole or not at all. */
  async put(key: string, value: RecordingEmbeddings): Promise<void> {
    this.made ??= mkdir(this.dir, { recursive: true });
    await this.made;
    const entry: Entry = {
      format: FORMAT,
      dim: value.dim,
      spans: value.spans.map((s) => [s.start, s.end]),
      x: Buffer.from(value.x.buffer, value.x.byteOffset, value.x.byteLength).toString('base64'),
    };
    const temporary = `${this.path(key)}.${process.pid}.${Date.now()}.tmp`;
    try {
      await writeFile(temporary, JSON.stringify(entry));
      await rename(temporary, this.path(key));
    } catch (err) {
      await rm(temporary, { force: true });
      throw err;
    }
  }

  private path(key: string): string {
    return join(this.dir, `${key}.json`);
  }
}
