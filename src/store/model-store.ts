/**
 * A model store: every training run saves a new version, each a model directory of its own, and
 * one of them is current. Versions are written aside and renamed into `versions/` whole, and the
 * current one is named by `current.json`, replaced by a rename: whenever a process dies, the store
 * holds only complete versions and `current.json` names one of them (or none yet).
 *
 *     <store>/versions/v0001/ model.json, weights.bin, labels.txt, ...
 *     <store>/versions/v0002/ ...
 *     <store>/current.json    {"version": "v0002", "metric": ..., "score": ..., ...}
 */
import { unwatchFile, watchFile } from 'fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'fs/promises';
import { basename, dirname, join } from 'path';
import { Observable } from 'rxjs';
import { MODEL_JSON } from './model-files';
import { LABELS_FILE } from './model-directory';

export const CURRENT_FILE = 'current.json';
export const VERSIONS_FOLDER = 'versions';

/** What `current.json` says. */
export interface CurrentVersion {
  version: string;
  /** When it became current, ISO 8601. */
  since: string;
  /** The metric versions are compared by, e.g. `macro AUPRC`, and this version's score. */
  metric?: string;
  score?: number;
  /** Why it is current: promoted after training, or rolled back to. */
  reason: 'promoted' | 'rollback' | 'first';
}

/** True when `dir` is a model store (it has a `versions` folder or a `current.json`). */
export async function isModelStore(dir: string): Promise<boolean> {
  const has = (name: string) =>
    stat(join(dir, name)).then(
      () => true,
      () => false,
    );
  return (await has(VERSIONS_FOLDER)) || (await has(CURRENT_FILE));
}

export class ModelStore {
  constructor(readonly root: string) {}

  /** The folder of a version. */
  dirOf(version: string): string {
    return join(this.root, VERSIONS_FOLDER, version);
  }

  /** Complete versions, oldest first. */
  async versions(): Promise<string[]> {
    const names = await readdir(join(this.root, VERSIONS_FOLDER)).catch(() => [] as string[]);
    return names.filter((n) => /^v\d+$/.test(n)).sort(byNumber);
  }

  /** The current version, or undefined when none has been made current yet. */
  async current(): Promise<CurrentVersion | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.root, CURRENT_FILE), 'utf8');
    } catch {
      return undefined;
    }
    const current = JSON.parse(text) as CurrentVersion;
    if (typeof current.version !== 'string' || !/^v\d+$/.test(current.version)) {
      throw new Error(`${join(this.root, CURRENT_FILE)}: expected {"version": "v<number>", ...}`);
    }
    return current;
  }

  /**
   * Adds a version: `write` fills a temporary folder beside the versions, which is then renamed
   * to the next free version name. Returns that name; the version is not current yet.
   */
  async add(write: (dir: string) => Promise<void>): Promise<string> {
    const versions = join(this.root, VERSIONS_FOLDER);
    await mkdir(versions, { recursive: true });
    await this.removeLeftovers();
    const temp = join(versions, `.saving-${process.pid}-${Date.now()}`);
    try {
      await write(temp);
      const existing = await this.versions();
      const next = existing.length === 0 ? 1 : numberOf(existing[existing.length - 1]) + 1;
      const version = `v${String(next).padStart(4, '0')}`;
      await rename(temp, this.dirOf(version));
      return version;
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  }

  /** Makes `version` current, by one rename. */
  async makeCurrent(version: string, details: Omit<CurrentVersion, 'version' | 'since'>) {
    await this.check(version);
    const current: CurrentVersion = { version, since: new Date().toISOString(), ...details };
    const temp = join(this.root, `.${CURRENT_FILE}.${process.pid}.tmp`);
    await writeFile(temp, JSON.stringify(current, null, 2) + '\n');
    await rename(temp, join(this.root, CURRENT_FILE));
    return current;
  }

  /**
   * Makes an earlier version current again: `version`, or the newest version older than the
   * current one.
   */
  async rollback(version?: string): Promise<CurrentVersion> {
    const current = await this.current();
    const versions = await this.versions();
    const target =
      version ??
      versions.filter((v) => current === undefined || byNumber(v, current.version) < 0).pop();
    if (target === undefined) {
      throw new Error(
        `${this.root}: no version older than ${current?.version ?? 'none'} to roll back to`,
      );
    }
    return this.makeCurrent(target, { reason: 'rollback' });
  }

  /** Removes the oldest versions beyond the newest `keep`, never the current one. */
  async prune(keep: number): Promise<string[]> {
    const current = (await this.current())?.version;
    const versions = await this.versions();
    const removed = versions
      .slice(0, Math.max(0, versions.length - keep))
      .filter((v) => v !== current);
    for (const v of removed) await rm(this.dirOf(v), { recursive: true, force: true });
    return removed;
  }

  /** What saves that never finished left (a process that died while writing): hidden folders. */
  private async removeLeftovers(): Promise<void> {
    const names = await readdir(join(this.root, VERSIONS_FOLDER)).catch(() => [] as string[]);
    const mine = `.saving-${process.pid}-`;
    for (const name of names) {
      if (name.startsWith('.') && !name.includes(mine)) {
        await rm(join(this.root, VERSIONS_FOLDER, name), { recursive: true, force: true });
      }
    }
  }

  private async check(version: string): Promise<void> {
    const dir = this.dirOf(version);
    const entries = await readdir(dir).catch(() => undefined);
    if (entries === undefined || !entries.includes(MODEL_JSON) || !entries.includes(LABELS_FILE)) {
      throw new Error(`${dir}: no such model version in the store`);
    }
  }
}

function numberOf(version: string): number {
  return Number(version.slice(1));
}

function byNumber(a: string, b: string): number {
  return numberOf(a) - numberOf(b);
}

/**
 * The folder of the store's current version, now and whenever `current.json` names another one
 * (polled every `intervalMs`: a rename is seen on every file system, where change events are
 * not). Emits nothing while the store has no current version; errors reading it are emitted.
 */
export function currentVersionDirs(root: string, intervalMs = 500): Observable<string> {
  const store = new ModelStore(root);
  const file = join(root, CURRENT_FILE);
  return new Observable<string>((subscriber) => {
    let last: string | undefined;
    const check = () => {
      store.current().then(
        (current) => {
          const dir = current === undefined ? undefined : store.dirOf(current.version);
          if (dir !== undefined && dir !== last) {
            last = dir;
            subscriber.next(dir);
          }
        },
        (err: unknown) => subscriber.error(err),
      );
    };
    check();
    watchFile(file, { interval: intervalMs }, check);
    return () => unwatchFile(file, check);
  });
}

/** The version a model folder is, when it lies in a store's versions folder. */
export function versionOf(dir: string): string | undefined {
  const name = basename(dir);
  return basename(dirname(dir)) === VERSIONS_FOLDER && /^v\d+$/.test(name) ? name : undefined;
}
