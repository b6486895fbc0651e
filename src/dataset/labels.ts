/** Folder or label names that mean "no event": their rows carry no class. */
export const NON_EVENT_NAMES = ['noise', 'background', 'other', 'silence'] as const;

/** What one label cell or class-folder name says about a row. */
export interface ParsedLabels {
  positives: string[];
  negatives: string[];
  nonEvent: boolean;
}

/**
 * Reads a class-folder name (or a label cell) the way BirdNET-Analyzer names training folders:
 * pieces split on the separator and trimmed; `noise`, `background`, `other` or `silence` (any
 * case) mark a non-event; a leading `-` marks negative samples of the class it names.
 *
 *     parseLabels('Junco hyemalis_Dark-eyed Junco, -Noise') -> positives [Junco...], nonEvent true
 */
export function parseLabels(name: string, separator = ','): ParsedLabels {
  const out: ParsedLabels = { positives: [], negatives: [], nonEvent: false };
  for (const raw of name.split(separator)) {
    const piece = raw.trim();
    if (piece === '') continue;
    if (isNonEvent(piece)) out.nonEvent = true;
    else if (piece.startsWith('-') && piece.length > 1) out.negatives.push(piece.slice(1).trim());
    else out.positives.push(piece);
  }
  // An empty label cell in a table says "none of the classes", as a noise folder does.
  if (out.positives.length === 0 && out.negatives.length === 0) out.nonEvent = true;
  return out;
}

export function isNonEvent(name: string): boolean {
  return (NON_EVENT_NAMES as readonly string[]).includes(name.trim().toLowerCase());
}

/**
 * The class list in model order: the sorted set of positive labels. Sorting compares code units,
 * as Python's `sorted` does for these names, so the order matches BirdNET-Analyzer's.
 *
 * @param where names the input in errors (a folder or file)
 */
export function classList(parsed: readonly ParsedLabels[], where: string): string[] {
  const positives = new Set(parsed.flatMap((p) => p.positives));
  for (const p of parsed) {
    for (const negative of p.negatives) {
      if (!positives.has(negative)) {
        throw new Error(
          `${where}: negative samples "-${negative}" have no positive "${negative}" class; ` +
            `add a "${negative}" folder or rename "-${negative}" to a non-event name ` +
            `(${NON_EVENT_NAMES.join(', ')})`,
        );
      }
    }
  }
  for (const label of positives) {
    if (/[\r\n]/.test(label)) {
      throw new Error(
        `${where}: label ${JSON.stringify(label)} contains a line break; labels.txt holds one ` +
          `label per line, so a label must fit on one line`,
      );
    }
  }
  const classes = [...positives].sort();
  if (classes.length === 0) {
    throw new Error(`${where}: no class found; every label is a non-event or negative label`);
  }
  if (classes.length === 1 && !parsed.some((p) => p.nonEvent)) {
    throw new Error(
      `${where}: only one class ("${classes[0]}"): binary training needs a non-event folder ` +
        `named one of ${NON_EVENT_NAMES.join(', ')} (any case)`,
    );
  }
  return classes;
}

/** Writes one row of labels: 1 for positives, -1 for negatives, 0 elsewhere. */
export function encodeLabels(
  parsed: ParsedLabels,
  classIndex: ReadonlyMap<string, number>,
  out: Float32Array,
  offset: number,
): void {
  for (const n of parsed.negatives) out[offset + classIndex.get(n)!] = -1;
  for (const p of parsed.positives) out[offset + classIndex.get(p)!] = 1;
}
