import { readFile } from 'fs/promises';
import { join } from 'path';
import { Source } from './dataset';
import { classFolders, filesOf } from './folders';
import { parseLabels } from './labels';
import { FloatRows } from './rows';
import { RawRows, parseNumber } from './table';

/** Rows of one BirdNET-Analyzer embeddings file: `[rows, dim]` and each row's time span. */
export interface EmbeddingsText {
  x: Float32Array;
  dim: number;
  sources: Source[];
}

/**
 * Reads a BirdNET-Analyzer embeddings file: one line per segment, `start<TAB>end<TAB>v1,v2,...`.
 * The vector length is taken from the first line (1024 for BirdNET 2.4, 1328 for older models)
 * and every other line must match it.
 *
 * @param file the name recorded as each row's source; defaults to `path`
 */
export async function readEmbeddingsText(path: string, file = path): Promise<EmbeddingsText> {
  const text = await readFile(path, 'utf8');
  const rows = new FloatRows();
  const sources: Source[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    const fields = raw.split('\t');
    if (fields.length !== 3) {
      throw new Error(
        `${path}: line ${line}: expected start<TAB>end<TAB>values (3 fields), ` +
          `found ${fields.length}`,
      );
    }
    const start = parseNumber(fields[0].trim(), path, line, 'start');
    const end = parseNumber(fields[1].trim(), path, line, 'end');
    const cells = fields[2].split(',');
    if (rows.dim === 0) rows.setDim(cells.length);
    if (cells.length !== rows.dim) {
      throw new Error(
        `${path}: line ${line}: embedding has ${cells.length} values, expected ${rows.dim} ` +
          `as on the first line`,
      );
    }
    rows.push(cells.map((c, j) => parseNumber(c.trim(), path, line, `value ${j + 1}`)));
    sources.push({ file, start, end });
  });
  if (sources.length === 0) throw new Error(`${path}: no embeddings in the file`);
  return { x: rows.toArray(), dim: rows.dim, sources };
}

/** True for names BirdNET-Analyzer gives embeddings files, and any other visible `.txt`. */
export function isEmbeddingsFile(name: string): boolean {
  return !name.startsWith('.') && name.toLowerCase().endsWith('.txt');
}

/**
 * Reads a training folder of embeddings: one subfolder per class, named as BirdNET-Analyzer
 * names them (`A`, `A, B` for several labels, `-A` for negatives of A, `noise` and the like for
 * non-events), each holding embeddings files. Sources are recorded relative to `root`.
 */
export async function readEmbeddingsFolder(root: string): Promise<RawRows> {
  const folders = await classFolders(root);

  const rows = new FloatRows();
  const labels: RawRows['labels'] = [];
  const sources: Source[] = [];
  let firstFile = '';
  for (const folder of folders) {
    const parsed = parseLabels(folder);
    const files = await filesOf(join(root, folder), isEmbeddingsFile);
    let found = 0;
    for (const name of files) {
      const relative = `${folder}/${name}`;
      const path = join(root, folder, name);
      const text = await readEmbeddingsText(path, relative);
      if (rows.dim === 0) {
        rows.setDim(text.dim);
        firstFile = relative;
      }
      if (text.dim !== rows.dim) {
        throw new Error(
          `${path}: embeddings have ${text.dim} values, but ${firstFile} has ${rows.dim}; ` +
            `a data set needs one embedding length (were two models used?)`,
        );
      }
      for (let r = 0; r < text.sources.length; r++) {
        rows.push(text.x.subarray(r * text.dim, (r + 1) * text.dim));
        labels.push(parsed);
      }
      sources.push(...text.sources);
      found += text.sources.length;
    }
    if (found === 0) {
      throw new Error(
        `${join(root, folder)}: class folder "${folder}" holds no embeddings ` +
          `(expected .txt files of lines start<TAB>end<TAB>values)`,
      );
    }
  }
  return { x: rows.toArray(), dim: rows.dim, labels, sources };
}
