import { mkdir, rm, writeFile } from 'fs/promises';
import { dirname, join } from 'path';
import { Random } from './random';

/** Classes of the synthetic demo set, in the folder naming of BirdNET-Analyzer training data. */
export const DEMO_CLASSES = [
  'Synthetica alba_White Synthetic Warbler',
  'Synthetica rubra_Red Synthetic Warbler',
  'Fictus cantor_Singing Fiction Finch',
  'Fictus minor_Lesser Fiction Finch',
] as const;

const DIM = 32;
const RECORDINGS = 10;
const SEGMENTS = 4;

/** One synthetic recording: its class folder, file name and segments. */
export interface DemoRecording {
  folder: string;
  name: string;
  segments: { start: number; end: number; values: number[] }[];
}

/**
 * The synthetic demo set: one folder per class plus `Noise`, 10 recordings of 4 segments each.
 * Each class is a Gaussian cloud around its own centre; each recording adds its own offset, so
 * segments of one recording resemble each other more than those of others, as real ones do.
 * The same seed gives the same numbers.
 */
export function demoRecordings(seed = 1): DemoRecording[] {
  const random = new Random(`demo/${seed}`);
  const gauss = () => {
    const u = 1 - random.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.uniform());
  };
  return [...DEMO_CLASSES, 'Noise'].flatMap((folder) => {
    const centre = Array.from({ length: DIM }, () => (folder === 'Noise' ? 0 : 1.5 * gauss()));
    return Array.from({ length: RECORDINGS }, (_, rec) => {
      const offset = Array.from({ length: DIM }, () => 0.5 * gauss());
      const segments = Array.from({ length: SEGMENTS }, (_, s) => ({
        start: s * 3,
        end: s * 3 + 3,
        values: centre.map((c, j) => Number((c + offset[j] + 0.8 * gauss()).toFixed(5))),
      }));
      return { folder, name: `rec${String(rec + 1).padStart(2, '0')}`, segments };
    });
  });
}

/**
 * Writes the demo set as a BirdNET-Analyzer training folder of embeddings files
 * (`<class>/<recording>.birdnet.embeddings.txt`, lines `start<TAB>end<TAB>values`).
 */
export async function writeDemoData(dir: string, seed = 1): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  for (const rec of demoRecordings(seed)) {
    await mkdir(join(dir, rec.folder), { recursive: true });
    const lines = rec.segments.map(
      (s) => `${s.start.toFixed(1)}\t${s.end.toFixed(1)}\t${s.values.join(',')}`,
    );
    await writeFile(
      join(dir, rec.folder, `${rec.name}.birdnet.embeddings.txt`),
      lines.join('\n') + '\n',
    );
  }
}

/** Writes the demo set as one CSV table: `file,start,end,label,e1..e32`. */
export async function writeDemoTable(path: string, seed = 1): Promise<void> {
  const header = [
    'file',
    'start',
    'end',
    'label',
    ...Array.from({ length: DIM }, (_, j) => `e${j + 1}`),
  ];
  const quote = (text: string) => (/[",]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  const rows = demoRecordings(seed).flatMap((rec) =>
    rec.segments.map((s) =>
      [quote(`${rec.folder}/${rec.name}`), s.start, s.end, quote(rec.folder), ...s.values].join(
        ',',
      ),
    ),
  );
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, [header.join(','), ...rows].join('\n') + '\n');
}
