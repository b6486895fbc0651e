import { Random } from '../random';
import { Part, PartCode, Source } from './dataset';

export interface SplitOptions {
  /** Share of each class's units that goes to validation, in [0, 1). */
  fraction: number;
  random: Random;
}

/**
 * Marks rows train or validation, per class and grouped by recording.
 *
 * The unit is the source file: all segments of one recording land on the same side, so a
 * recording never scores itself. Rows without a source are their own units. Units are grouped by
 * their label combination; each group is shuffled and train gets max(1, trunc(n * (1 - f))) units,
 * validation the rest (n = 5, f = 0.2 -> 4 / 1). Units holding a negative (-1) label stay in train.
 * Rows already marked test keep that mark.
 *
 * @param y `[rows, classes]` labels
 * @returns a new parts array
 */
export function splitParts(
  y: Float32Array,
  classes: number,
  sources: readonly (Source | undefined)[],
  parts: Uint8Array,
  options: SplitOptions,
): Uint8Array {
  const { fraction, random } = options;
  if (!(fraction >= 0 && fraction < 1)) {
    throw new Error(`validation split: expected a fraction in [0, 1), got ${fraction}`);
  }
  const out = Uint8Array.from(parts);
  const groups = new Map<string, number[][]>();
  const scratch = Buffer.alloc(classes);
  for (const unit of unitsOf(sources, parts)) {
    const key = unitKey(y, classes, unit, scratch);
    if (key === undefined) continue;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(unit);
  }

  for (const key of [...groups.keys()].sort()) {
    const units = random.shuffle(groups.get(key)!);
    const train = Math.max(1, Math.trunc(units.length * (1 - fraction)));
    units.forEach((unit, i) => {
      const part: PartCode = i < train ? Part.train : Part.validation;
      for (const r of unit) out[r] = part;
    });
  }
  return out;
}

/** Rows grouped by source file, in order of first appearance; test rows are left out. */
function unitsOf(sources: readonly (Source | undefined)[], parts: Uint8Array): number[][] {
  const byFile = new Map<string, number[]>();
  const units: number[][] = [];
  sources.forEach((source, r) => {
    if (parts[r] === Part.test) return;
    if (source === undefined) {
      units.push([r]);
      return;
    }
    let unit = byFile.get(source.file);
    if (unit === undefined) {
      unit = [];
      byFile.set(source.file, unit);
      units.push(unit);
    }
    unit.push(r);
  });
  return units;
}

/**
 * The label combination of a unit, one '0' or '1' per class of its first row, or undefined when
 * the unit holds a negative and must train. `scratch` has room for one byte per class.
 */
function unitKey(
  y: Float32Array,
  classes: number,
  unit: readonly number[],
  scratch: Buffer,
): string | undefined {
  for (const r of unit) {
    for (let c = 0; c < classes; c++) if (y[r * classes + c] < 0) return undefined;
  }
  const first = unit[0] * classes;
  for (let c = 0; c < classes; c++) scratch[c] = y[first + c] > 0 ? 0x31 : 0x30;
  return scratch.toString('latin1', 0, classes);
}
