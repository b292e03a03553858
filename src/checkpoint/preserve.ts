/**
 * The filesystem edge of preserved files: at a dump, copy what the app holds on
 * ephemeral storage (and STASIS_PRESERVE) into `<generation>/files/<path>`; before a
 * restore, put those copies back where they are missing or differ.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, realpath, rename, rm, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { foldersBetween, isExcluded, overLimit, putBackAction, shouldSave, type HeldPath, type PreservedEntry, type Present } from './files.js';
import { collectHeld } from './held.js';
import { mountOf, readMounts, storageOf, type MountEntry } from './mounts.js';

/** The folder of a generation that holds the saved copies, by their absolute path. */
export const FILES_DIR = 'files';

/** Saving or putting back failed; the message names the path (or the biggest files). */
export class PreserveError extends Error {
  override name = 'PreserveError';
}

/** What decides which files are saved. */
export interface Selection {
  /** the app's root PID (stasis's child); its whole tree is scanned */
  readonly pid: number;
  readonly preserve: readonly string[];
  readonly exclude: readonly string[];
  /** when stasis (and so the container) started, ms since the epoch */
  readonly startedAt: number;
  /** never saved: stasis's own checkpoint directory */
  readonly ownRoots: readonly string[];
}

export interface SaveInput extends Selection {
  readonly incoming: string;
  readonly limit: number;
}

export interface Saved {
  readonly entries: PreservedEntry[];
  readonly files: number;
  readonly bytes: number;
}

const CHUNK = 1 << 20;

/** Copies `from` to a new file `to`, returning its size and sha256. */
async function copyHashed(from: string, to: string, mode: number): Promise<{ size: number; sha256: string }> {
  const source = await open(from, constants.O_RDONLY | constants.O_NOFOLLOW);
  let target: FileHandle | undefined;
  try {
    target = await open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await source.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      await target.write(buffer, 0, bytesRead);
      size += bytesRead;
    }
    await target.sync();
    return { size, sha256: hash.digest('hex') };
  } finally {
    await source.close();
    await target?.close();
  }
}

async function sha256Of(path: string): Promise<string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) return hash.digest('hex');
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}

/** STASIS_PRESERVE: a file, or a folder with everything below it; a missing path is skipped. */
async function preserved(paths: readonly string[], log: Logger): Promise<HeldPath[]> {
  const held: HeldPath[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path);
    if (info.isFile()) held.push({ path, kind: 'file', reason: 'preserve', writable: false });
    if (!info.isDirectory()) return; // symlinks, sockets, fifos and devices are not copied
    held.push({ path, kind: 'dir', reason: 'preserve', writable: false });
    for (const name of (await readdir(path)).sort()) await walk(join(path, name));
  };
  for (const path of paths) {
    const real = await realpath(path).catch(() => undefined);
    if (real === undefined) {
      log.warn({ path }, 'STASIS_PRESERVE path not found; nothing saved for it');
      continue;
    }
    await walk(real);
  }
  return held;
}

function entryOf(path: string, info: { mode: number; uid: number; gid: number; mtimeMs: number; size: number }, type: 'file' | 'dir'): PreservedEntry {
  return { path, type, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid, mtime: info.mtimeMs, size: type === 'file' ? info.size : 0 };
}

/** Chooses what to save: held paths on ephemeral storage (see shouldSave), with the folders above them. */
async function select(input: Selection, held: readonly HeldPath[], mounts: readonly MountEntry[], log: Logger): Promise<PreservedEntry[]> {
  const chosen = new Map<string, PreservedEntry>();
  for (const item of held) {
    if (isExcluded(item.path, input.exclude, input.ownRoots)) continue;
    const mount = mountOf(item.path, mounts);
    if (mount === undefined || mount.mountPoint === item.path) continue;
    const info = await lstat(item.path).catch(() => undefined);
    if (info === undefined || (item.kind === 'file' ? !info.isFile() : !info.isDirectory())) continue;
    const storage = storageOf(item.path, mounts);
    if (item.reason === 'preserve' && storage === 'volume') {
      log.warn({ path: item.path }, 'STASIS_PRESERVE path is on a volume; it stays there and is not saved');
      continue;
    }
    if (!shouldSave(item, { storage, ctime: info.ctimeMs, birthtime: info.birthtimeMs }, input.startedAt)) continue;
    for (const folder of foldersBetween(mount.mountPoint, item.path)) {
      if (chosen.has(folder)) continue;
      chosen.set(folder, entryOf(folder, await lstat(folder), 'dir'));
    }
    chosen.set(item.path, entryOf(item.path, info, item.kind));
  }
  return [...chosen.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Before a dump: will it save files? Then criu must leave the tree stopped until they
 * are copied, even in continue mode: criu records each file's size, and a restore
 * fails on a file that grew after the dump (a log the app kept writing).
 */
export async function savesFiles(selection: Selection, log: Logger): Promise<boolean> {
  if (selection.preserve.length > 0) return true;
  return (await select(selection, collectHeld(selection.pid), readMounts(), log)).length > 0;
}

/**
 * Saves into `<incoming>/files/` what the stopped app holds on storage that does not
 * outlive the container, plus STASIS_PRESERVE. Throws PreserveError over the limit.
 */
export async function saveFiles(input: SaveInput, log: Logger): Promise<Saved> {
  const mounts = readMounts();
  const held = [...collectHeld(input.pid), ...(await preserved(input.preserve, log))];
  const selected = await select(input, held, mounts, log);
  const tooMuch = overLimit(
    selected.filter((entry) => entry.type === 'file'),
    input.limit,
  );
  if (tooMuch !== undefined) throw new PreserveError(tooMuch);
  const entries: PreservedEntry[] = [];
  let bytes = 0;
  for (const entry of selected) {
    if (entry.type === 'dir') {
      entries.push(entry);
      continue;
    }
    const copy = join(input.incoming, FILES_DIR, entry.path);
    await mkdir(dirname(copy), { recursive: true, mode: 0o700 });
    try {
      const { size, sha256 } = await copyHashed(entry.path, copy, 0o600);
      entries.push({ ...entry, size, sha256 });
      bytes += size;
    } catch (error) {
      throw new PreserveError(`cannot save ${entry.path}: ${(error as Error).message}`);
    }
  }
  if (entries.some((entry) => entry.type === 'file')) await syncFolders(join(input.incoming, FILES_DIR));
  return { entries, files: entries.filter((entry) => entry.type === 'file').length, bytes };
}

/** fsyncs a folder tree's folders (the files were synced as they were written). */
async function syncFolders(folder: string): Promise<void> {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    if (entry.isDirectory()) await syncFolders(join(folder, entry.name));
  }
  const handle = await open(folder, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface PutBackResult {
  readonly written: number;
  readonly kept: number;
  /** paths left alone because they now live on a volume */
  readonly skipped: readonly string[];
}

async function presentAt(path: string, expectedSize: number): Promise<Present> {
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (info === undefined) return { kind: 'missing' };
  const owner = { mode: info.mode & 0o7777, uid: info.uid, gid: info.gid };
  if (info.isDirectory()) return { kind: 'dir', ...owner };
  if (!info.isFile()) return { kind: 'other' };
  const sha256 = info.size === expectedSize ? await sha256Of(path) : undefined;
  return { kind: 'file', size: info.size, ...owner, ...(sha256 === undefined ? {} : { sha256 }) };
}

async function setOwner(path: string, entry: PreservedEntry): Promise<void> {
  const info = await lstat(path);
  // only root may give a file away; an unchanged owner needs no call
  if (info.uid !== entry.uid || info.gid !== entry.gid) await chown(path, entry.uid, entry.gid);
  await chmod(path, entry.mode);
}

async function writeBack(saved: string, entry: PreservedEntry): Promise<void> {
  const temporary = join(dirname(entry.path), `.${basename(entry.path)}.stasis-${process.pid}`);
  await rm(temporary, { force: true });
  try {
    await copyHashed(saved, temporary, 0o600);
    await setOwner(temporary, entry);
    await utimes(temporary, entry.mtime / 1000, entry.mtime / 1000);
    await rename(temporary, entry.path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Puts a generation's saved files back before criu restores it. Every saved copy is
 * checked against its sha256 first: a damaged copy makes the generation broken.
 * Throws PreserveError naming the path.
 */
export async function putBackFiles(generationPath: string, entries: readonly PreservedEntry[]): Promise<PutBackResult> {
  const saved = (entry: PreservedEntry): string => join(generationPath, FILES_DIR, entry.path);
  for (const entry of entries) {
    if (entry.type !== 'file') continue;
    const hash = await sha256Of(saved(entry)).catch((error: Error) => `unreadable: ${error.message}`);
    if (hash !== entry.sha256) throw new PreserveError(`the saved copy of ${entry.path} is damaged (sha256 ${hash}, expected ${entry.sha256 ?? 'none'})`);
  }
  const mounts = readMounts();
  let written = 0;
  let kept = 0;
  const skipped: string[] = [];
  for (const entry of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    try {
      const decision = putBackAction(entry, storageOf(entry.path, mounts), await presentAt(entry.path, entry.size));
      switch (decision.action) {
        case 'write':
          await writeBack(saved(entry), entry);
          written++;
          break;
        case 'mkdir':
          await mkdir(entry.path, { mode: 0o700 });
          await setOwner(entry.path, entry);
          written++;
          break;
        case 'chmod':
          await setOwner(entry.path, entry);
          kept++;
          break;
        case 'keep':
          kept++;
          break;
        case 'skip':
          skipped.push(entry.path);
          break;
        case 'fail':
          throw new PreserveError(`cannot put back ${entry.path}: ${decision.reason}`);
      }
    } catch (error) {
      if (error instanceof PreserveError) throw error;
      throw new PreserveError(`cannot put back ${entry.path}: ${(error as Error).message}`);
    }
  }
  return { written, kept, skipped };
}
