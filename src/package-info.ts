import { existsSync, readFileSync } from 'fs';
import { dirname, join } from 'path';

/** This package's name and version, read from its package.json (in `src/` or in `dist/src/`). */
export const PACKAGE = findPackage(__dirname);

function findPackage(start: string): { name: string; version: string } {
  for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const json = JSON.parse(readFileSync(file, 'utf8')) as { name: string; version: string };
      if (json.name === '@seedlab/node-red-custom-classifier') return json;
    }
  }
  return { name: '@seedlab/node-red-custom-classifier', version: 'unknown' };
}
