import { createReadStream } from 'fs';
import { open } from 'fs/promises';
import { extname } from 'path';
import { parse } from 'csv-parse';
import { Source, TableColumns } from './dataset';
import { ParsedLabels, parseLabels } from './labels';
import { FloatRows } from './rows';
import { featureOrder } from './features';

export interface TableOptions {
  /** Column holding each row's label(s). */
  labelColumn: string;
  /** Separates several labels in one cell (multi-label). Default `,`. */
  labelSeparator?: string;
  /** Column naming each row's recording; rows of one recording stay on one side of the split. */
  fileColumn?: string;
  startColumn?: string;
  endColumn?: string;
  /** Columns that are neither features nor labels. */
  ignoreColumns?: readonly string[];
  /**
   * Field delimiter; default: tab for .tsv/.tab, else the most frequent of , ; tab in the
   * header.
   */
  delimiter?: string;
  /**
   * File, start, end and ignored columns that may be missing from the header: those a model
   * recorded, which a table to evaluate does not need. Others named and missing are refused.
   */
  optionalColumns?: readonly string[];
  /** Where the label column's name came from, for the error when the header lacks it. */
  labelColumnOrigin?: string;
  /**
   * The feature columns expected (a model's): a header whose other columns differ is refused
   * before any row is read, naming each column one side lacks.
   */
  features?: readonly string[];
}

/** Labelled rows read from a file, before any split. */
export interface RawRows {
  x: Float32Array;
  dim: number;
  labels: ParsedLabels[];
  sources: (Source | undefined)[];
  /** Names of the feature columns, or undefined where the format has none. */
  features?: string[];
  /** The columns the table was read with, for a table. */
  table?: TableColumns;
}

/**
 * Reads a CSV/TSV table of embeddings: one row per sample, one column per feature, a label column.
 * Every other column is a feature and must hold a number in every row. Spreadsheet habits are
 * handled (byte-order mark, CRLF); a decimal comma is refused with the line, never read as 0.
 */
export async function readTable(path: string, options: TableOptions): Promise<RawRows> {
  const first = await firstLine(path);
  // Excel writes "sep=;" as a first line to name the delimiter; the header follows it.
  const excelSep = /^sep=(.)$/.exec(first)?.[1];
  if (options.delimiter !== undefined && options.delimiter.length !== 1) {
    throw new Error(`${path}: delimiter: expected one character, got "${options.delimiter}"`);
  }
  const delimiter = options.delimiter ?? excelSep ?? sniffDelimiter(path, first);
  const parser = createReadStream(path).pipe(
    parse({
      delimiter,
      bom: true,
      info: true,
      relax_column_count: true,
      trim: true,
      from_line: excelSep === undefined ? 1 : 2,
    }),
  );

  let header: string[] | undefined;
  let layout: Layout | undefined;
  const x = new FloatRows();
  const labels: ParsedLabels[] = [];
  const sources: (Source | undefined)[] = [];
  try {
    for await (const { record, info } of parser as AsyncIterable<CsvRecord>) {
      const line = info.lines;
      checkUtf8(record, path, line);
      if (header === undefined) {
        header = record;
        layout = planColumns(`${path}: line ${line}`, header, options);
        featureOrder(
          layout.features.map((c) => header![c]),
          options.features,
          path,
        );
        x.setDim(layout.features.length);
        continue;
      }
      if (record.length === 1 && record[0] === '') continue;
      if (record.length !== header.length) {
        throw new Error(
          `${path}: line ${line}: expected ${header.length} fields as in the header, ` +
            `found ${record.length}`,
        );
      }
      const values = layout!.features.map((c) => parseNumber(record[c], path, line, header![c]));
      x.push(values);
      labels.push(parseLabels(record[layout!.label], options.labelSeparator ?? ','));
      sources.push(sourceOf(layout!, record, path, line, header));
    }
  } catch (err) {
    parser.destroy();
    const e = err as Error & { code?: string; lines?: number };
    if (e.code?.startsWith('CSV_'))
      throw new Error(`${path}: line ${e.lines ?? '?'}: ${e.message}`);
    throw err;
  }

  if (header === undefined || labels.length === 0) throw new Error(`${path}: no data rows`);
  return {
    x: x.toArray(),
    dim: layout!.features.length,
    labels,
    sources,
    features: layout!.features.map((c) => header![c]),
    table: columnsOf(options),
  };
}

/** The column options that were given, as a model records them. */
function columnsOf(options: TableOptions): TableColumns {
  const { labelColumn, labelSeparator, fileColumn, startColumn, endColumn, ignoreColumns } =
    options;
  const { delimiter } = options;
  const given = { labelSeparator, fileColumn, startColumn, endColumn, ignoreColumns, delimiter };
  return {
    labelColumn,
    ...Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined)),
  };
}

/** What a byte that is not UTF-8 decodes to. */
const NOT_UTF8 = '\uFFFD';

/** Refuses a line of another encoding: its labels would silently merge into one. */
function checkUtf8(record: string[], path: string, line: number): void {
  if (record.some((cell) => cell.includes(NOT_UTF8))) {
    throw new Error(
      `${path}: line ${line}: not UTF-8 text (saved as Windows-1252 or Latin-1?); ` +
        `save the table as UTF-8`,
    );
  }
}

interface CsvRecord {
  record: string[];
  info: { lines: number };
}

interface Layout {
  label: number;
  file?: number;
  start?: number;
  end?: number;
  features: number[];
}

/** @param where the file and line of the header, as errors name them */
function planColumns(where: string, header: string[], options: TableOptions): Layout {
  header.forEach((name, i) => {
    if (name === '') {
      const hint =
        i === header.length - 1
          ? ' (a delimiter at the end of the line?)'
          : i === 0
            ? ' (a row index, as pandas writes one? save the table with index=False)'
            : '';
      throw new Error(`${where}: column ${i + 1} has no name${hint}`);
    }
    if (header.indexOf(name) !== i) {
      throw new Error(`${where}: two columns are named "${name}"; names must differ`);
    }
  });
  const optional = new Set(options.optionalColumns ?? []);
  const find = (name: string | undefined, what: string, origin = ''): number | undefined => {
    if (name === undefined) return undefined;
    const index = header.indexOf(name);
    if (index < 0 && !optional.has(name)) {
      throw new Error(
        `${where}: no ${what} column "${name}"${origin}; the header has ${header.join(', ')}`,
      );
    }
    return index < 0 ? undefined : index;
  };
  const origin = options.labelColumnOrigin === undefined ? '' : ` (${options.labelColumnOrigin})`;
  const label = find(options.labelColumn, 'label', origin)!;
  const file = find(options.fileColumn, 'file');
  const start = find(options.startColumn, 'start');
  const end = find(options.endColumn, 'end');
  for (const name of options.ignoreColumns ?? []) find(name, 'ignored');
  const taken = new Set([label, file, start, end]);
  const ignored = new Set(options.ignoreColumns ?? []);
  const features = header.flatMap((name, i) => (taken.has(i) || ignored.has(name) ? [] : [i]));
  if (features.length === 0) throw new Error(`${where}: no feature columns left`);
  return { label, file, start, end, features };
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A finite number from a cell, or an error naming the file, line and column. */
export function parseNumber(cell: string, path: string, line: number, column: string): number {
  if (NUMBER.test(cell)) {
    const value = Number(cell);
    if (Number.isFinite(Math.fround(value))) return value;
    throw new Error(
      `${path}: line ${line}, column "${column}": ${cell} is beyond the range of 32-bit floats ` +
        `(about 3.4e38)`,
    );
  }
  const hint = /^[+-]?\d+,\d+$/.test(cell)
    ? ' (a decimal comma? write numbers with a decimal point)'
    : '';
  throw new Error(
    `${path}: line ${line}, column "${column}": expected a finite number, found "${cell}"${hint}`,
  );
}

function sourceOf(
  layout: Layout,
  record: string[],
  path: string,
  line: number,
  header: string[],
): Source | undefined {
  // A row without a recording is a unit of its own, as in a table without a file column.
  if (layout.file === undefined || record[layout.file] === '') return undefined;
  const time = (i: number | undefined) =>
    i === undefined ? undefined : parseNumber(record[i], path, line, header[i]);
  return { file: record[layout.file], start: time(layout.start), end: time(layout.end) };
}

function sniffDelimiter(path: string, header: string): string {
  const ext = extname(path).toLowerCase();
  if (ext === '.tsv' || ext === '.tab') return '\t';
  const count = (d: string) => header.split(d).length - 1;
  return [',', ';', '\t'].reduce((best, d) => (count(d) > count(best) ? d : best), ',');
}

/** The first line of a file (up to 64 KiB), without a byte-order mark. */
async function firstLine(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0);
    return buffer
      .subarray(0, bytesRead)
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .split(/\r?\n/)[0];
  } finally {
    await handle.close();
  }
}
