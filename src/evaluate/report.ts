/**
 * Writes an evaluation report as CSV (for spreadsheets and BirdNET-style tooling), as a JSON-safe
 * object (for saving beside a model or sending in a message) and as a terminal table.
 */
import type { ClassMetrics, EvaluationReport } from './metrics';

/** The CSV columns, in order. */
export const CSV_HEADER =
  'Class,Samples,Precision,Recall,F1,Threshold,Precision@T,Recall@T,F1@T,AP,AUROC,TP,FP,TN,FN';

/** A {@link ClassMetrics} row with every undefined turned into null, so JSON keeps the key. */
export type ClassMetricsJson = {
  [K in keyof ClassMetrics]: undefined extends ClassMetrics[K]
    ? Exclude<ClassMetrics[K], undefined> | null
    : ClassMetrics[K];
};

/** {@link EvaluationReport} as a plain JSON-safe object. */
export interface EvaluationReportJson {
  macro: ClassMetricsJson;
  classes: ClassMetricsJson[];
  rows: number;
  top1: number | null;
  warnings: string[];
}

/**
 * The report as CSV text: the header, the macro row (label `macro`), then one row per class.
 * Rates have 5 decimals, counts are whole numbers, an undefined value is an empty cell, and a
 * label holding a comma, quote or line break is quoted. Lines end in `\n`, the last one too.
 */
export function reportToCsv(report: EvaluationReport): string {
  const lines = [CSV_HEADER, ...[report.macro, ...report.classes].map(csvRow)];
  return lines.join('\n') + '\n';
}

/** The report as a plain object that `JSON.stringify` keeps whole: undefined becomes null. */
export function reportToJson(report: EvaluationReport): EvaluationReportJson {
  return {
    macro: rowToJson(report.macro),
    classes: report.classes.map(rowToJson),
    rows: report.rows,
    top1: report.top1 ?? null,
    warnings: [...report.warnings],
  };
}

/**
 * The report as a fixed-width table for a terminal: class, samples, precision, recall and F1 at
 * 0.5, AP, AUROC and the F1-best threshold; the macro row first, set off by a rule. Rates have 3
 * decimals, an undefined value shows as `-`, and labels longer than 40 characters are cut. The
 * report's warnings and top-1 accuracy are not part of the table.
 */
export function formatReportTable(report: EvaluationReport): string {
  const header = ['Class', 'Samples', 'P', 'R', 'F1', 'AP', 'AUROC', 'Thr'];
  const body = [report.macro, ...report.classes].map((m) => [
    clip(m.label, MAX_LABEL),
    String(m.samples),
    fixed(m.precision, 3),
    fixed(m.recall, 3),
    fixed(m.f1, 3),
    fixed(m.averagePrecision, 3),
    fixed(m.rocAuc, 3),
    fixed(m.threshold, 2),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((cells) => cells[c].length)));

  // Labels read best left-aligned, numbers right-aligned so their decimal points line up.
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const [macro, ...classes] = body;
  return [line(header), rule, line(macro), rule, ...classes.map(line)].join('\n') + '\n';
}

const MAX_LABEL = 40;

function csvRow(m: ClassMetrics): string {
  return [
    csvText(m.label),
    String(m.samples),
    fixed(m.precision, 5, ''),
    fixed(m.recall, 5, ''),
    fixed(m.f1, 5, ''),
    fixed(m.threshold, 5, ''),
    fixed(m.precisionAtThreshold, 5, ''),
    fixed(m.recallAtThreshold, 5, ''),
    fixed(m.f1AtThreshold, 5, ''),
    fixed(m.averagePrecision, 5, ''),
    fixed(m.rocAuc, 5, ''),
    String(m.tp),
    String(m.fp),
    String(m.tn),
    String(m.fn),
  ].join(',');
}

function csvText(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function fixed(value: number | undefined, decimals: number, missing = '-'): string {
  return value === undefined ? missing : value.toFixed(decimals);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function rowToJson(m: ClassMetrics): ClassMetricsJson {
  return { ...m, averagePrecision: m.averagePrecision ?? null, rocAuc: m.rocAuc ?? null };
}
