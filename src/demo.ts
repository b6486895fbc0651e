import { mkdir, rm, writeFile } from 'fs/promises';
import { join } from 'path';
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

/**
 * Writes a small synthetic training folder: one folder per class plus `Noise`, each holding
 * BirdNET-Analyzer embeddings files (`start<TAB>end<TAB>values`), 10 recordings of 4 segments.
 * Each class is a Gaussian cloud around its own centre; each recording adds its own offset, so
 * segments of one recording resemble each other more than those of others, as real ones do.
 * The same seed writes the same files.
 */
export async function writeDemoData(dir: string, seed = 1): Promise<void> {
  const random = new Random(`demo/${seed}`);
  const gauss = () => {
    const u = 1 - random.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.uniform());
  };
  await rm(dir, { recursive: true, force: true });

  const folders = [...DEMO_CLASSES, 'Noise'];
  for (const folder of folders) {
    const centre = Array.from({ length: DIM }, () => (folder === 'Noise' ? 0 : 1.5 * gauss()));
    await mkdir(join(dir, folder), { recursive: true });
    for (let rec = 0; rec < RECORDINGS; rec++) {
      const offset = Array.from({ length: DIM }, () => 0.5 * gauss());
      const lines = Array.from({ length: SEGMENTS }, (_, s) => {
        const values = centre.map((c, j) => (c + offset[j] + 0.8 * gauss()).toFixed(5));
        return `${(s * 3).toFixed(1)}\t${(s * 3 + 3).toFixed(1)}\t${values.join(',')}`;
      });
      const name = `rec${String(rec + 1).padStart(2, '0')}.birdnet.embeddings.txt`;
      await writeFile(join(dir, folder, name), lines.join('\n') + '\n');
    }
  }
}
