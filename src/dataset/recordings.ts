import { join } from 'path';
import { EmbeddingCache } from '../audio/cache';
import { AUDIO_EXTENSIONS, isAudioFile } from '../audio/decode';
import { Extractor } from '../audio/extractor';
import { AudioSettings, embedRecording } from '../audio/recordings';
import { MIN_SECONDS } from '../audio/segments';
import { Source } from './dataset';
import { classFolders, filesOf } from './folders';
import { parseLabels } from './labels';
import { FloatRows } from './rows';
import { RawRows } from './table';

/** What a load of recordings found, per class folder and per file. */
export interface RecordingsReport {
  /** Audio files found in the class folders. */
  files: number;
  /** Files decoded and embedded by this load. */
  embedded: number;
  /** Files whose embeddings came from the cache. */
  cached: number;
  /** Segments embedded, one row each. */
  segments: number;
  /** Per class folder: its audio files and their segments. */
  perClass: Record<string, { files: number; segments: number }>;
  /** Files that gave no row, and why (too short, empty, not decodable). */
  nothing: { file: string; reason: string }[];
  /** Files that could not be read or decoded (among `nothing`). */
  skipped: number;
}

export interface RecordingsOptions {
  extractor: Extractor;
  settings: AudioSettings;
  cache?: EmbeddingCache;
  /** One line per file skipped, naming it and why. */
  warn?: (line: string) => void;
  /** After each file: files done, of how many. */
  progress?: (done: number, total: number) => void;
}

/** True when some class folder of `root` holds audio files: it is read as recordings. */
export async function holdsRecordings(root: string): Promise<boolean> {
  for (const folder of await classFolders(root)) {
    if ((await filesOf(join(root, folder), isAudioFile)).length > 0) return true;
  }
  return false;
}

/**
 * Reads a training folder of recordings: one subfolder per class, named as BirdNET-Analyzer names
 * them, each holding audio files. Every file is cut into segments and embedded (or taken from the
 * cache); each segment is a row whose source is the file, relative to `root`, and its time span.
 * A file that cannot be decoded is skipped with a warning; a class folder that gives no row at all
 * is an error that says why, since the class could not be trained.
 */
export async function readRecordingsFolder(
  root: string,
  options: RecordingsOptions,
): Promise<{ raw: RawRows; report: RecordingsReport }> {
  const folders = await classFolders(root);
  const listed = await Promise.all(folders.map((f) => filesOf(join(root, f), isAudioFile)));
  const total = listed.reduce((n, files) => n + files.length, 0);
  const report: RecordingsReport = {
    files: total,
    embedded: 0,
    cached: 0,
    segments: 0,
    perClass: {},
    nothing: [],
    skipped: 0,
  };
  const rows = new FloatRows();
  const labels: RawRows['labels'] = [];
  const sources: Source[] = [];

  let done = 0;
  for (const [f, folder] of folders.entries()) {
    const parsed = parseLabels(folder);
    const counts = { files: listed[f].length, segments: 0 };
    const problems: string[] = [];
    for (const name of listed[f]) {
      const relative = `${folder}/${name}`;
      const outcome = await embedRecording(join(root, folder, name), options);
      options.progress?.(++done, total);
      if (outcome.kind === 'unreadable') {
        report.skipped++;
        report.nothing.push({ file: relative, reason: outcome.reason });
        problems.push('unreadable');
        options.warn?.(`skipped ${relative}: ${outcome.reason}`);
        continue;
      }
      report[outcome.kind]++;
      const { x, dim, spans } = outcome.embeddings;
      if (spans.length === 0) {
        report.nothing.push({ file: relative, reason: tooShort(options.settings.mode) });
        problems.push('short');
        continue;
      }
      if (rows.dim === 0) rows.setDim(dim);
      if (dim !== rows.dim) {
        throw new Error(
          `${join(root, relative)}: embeddings have ${dim} values, expected ${rows.dim}`,
        );
      }
      spans.forEach((span, r) => {
        rows.push(x.subarray(r * dim, (r + 1) * dim));
        labels.push(parsed);
        sources.push({ file: relative, ...span });
      });
      counts.segments += spans.length;
    }
    if (counts.segments === 0) throw noRows(root, folder, counts.files, problems, options.settings);
    report.perClass[folder] = counts;
    report.segments += counts.segments;
  }
  return { raw: { x: rows.toArray(), dim: rows.dim, labels, sources }, report };
}

function tooShort(mode: string): string {
  return `shorter than ${MIN_SECONDS} s of audio, the least a segment needs (crop mode ${mode})`;
}

/** The error for a class folder without rows, saying why none of its files gave one. */
function noRows(
  root: string,
  folder: string,
  files: number,
  problems: string[],
  settings: AudioSettings,
): Error {
  const where = `${join(root, folder)}: class folder "${folder}" gives no training rows`;
  if (files === 0) {
    return new Error(`${where}: it holds no audio files (${AUDIO_EXTENSIONS.join(', ')})`);
  }
  const short = problems.filter((p) => p === 'short').length;
  const unreadable = files - short;
  const reasons = [
    short > 0 ? `${short} of ${files} files are ${tooShort(settings.mode)}` : '',
    unreadable > 0 ? `${unreadable} of ${files} files could not be decoded` : '',
  ].filter((r) => r !== '');
  return new Error(`${where}: ${reasons.join('; ')}`);
}
