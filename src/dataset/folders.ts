import { readdir, stat } from 'fs/promises';
import { join } from 'path';

/**
 * The class folders of a training folder: its visible immediate subfolders, sorted as
 * BirdNET-Analyzer sorts them. A linked class folder counts as a folder, as it does in a file
 * manager.
 */
export async function classFolders(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true });
  const isFolder = async (e: (typeof entries)[number]) =>
    e.isDirectory() ||
    (e.isSymbolicLink() && (await stat(join(root, e.name)).catch(() => undefined))?.isDirectory());
  const folders: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith('.') && (await isFolder(e))) folders.push(e.name);
  }
  if (folders.length === 0) throw new Error(`${root}: no class folders`);
  return folders.sort();
}

/** The visible files of a class folder that `accept` takes, sorted. */
export async function filesOf(
  folder: string,
  accept: (name: string) => boolean,
): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true });
  return entries
    .filter((e) => !e.name.startsWith('.') && !e.isDirectory() && accept(e.name))
    .map((e) => e.name)
    .sort();
}
