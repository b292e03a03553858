/**
 * Pure decisions about the files that travel with a checkpoint: which of the files
 * the app holds are saved, what the size limit says, and what a restore does with
 * each saved entry. The /proc scan is in held.ts, the copying in preserve.ts.
 */
import { dirname, matchesGlob } from 'node:path';
import { formatBytes } from '../format.js';
import type { Storage } from './mounts.js';

/** One saved file or folder, as stasis.json lists it. */
export interface PreservedEntry {
  readonly path: string;
  readonly type: 'file' | 'dir';
  /** permission bits (mode & 0o7777): criu refuses a file whose mode changed */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** ms since the epoch */
  readonly mtime: number;
  /** bytes; 0 for a folder */
  readonly size: number;
  /** of the content; files only */
  readonly sha256?: string;
}

/** Why the app needs a path: criu reopens every one of them on restore. */
export type HeldReason = 'open' | 'mapped' | 'socket' | 'cwd' | 'preserve';

/** A path the app's process tree holds (or STASIS_PRESERVE names). */
export interface HeldPath {
  readonly path: string;
  readonly kind: 'file' | 'dir';
  readonly reason: HeldReason;
  /** opened for writing, or mapped shared and writable */
  readonly writable: boolean;
}

/** What the filesystem says about a held path at dump time. */
export interface PathFacts {
  readonly storage: Storage;
  /** status change time, ms since the epoch */
  readonly ctime: number;
  /** creation time (statx btime), ms since the epoch; 0 where the filesystem does not keep it */
  readonly birthtime: number;
}

/**
 * Pure: is a held path saved into the generation?
 * - tmpfs and emptyDirs: always; the next container starts them empty.
 * - the container's root filesystem: only what the container changed. The image's own
 *   files (the app's binary, its libraries, class files) are in the next container's
 *   image too, so saving them would copy the image into every generation. A file
 *   opened for writing or with a status change (ctime) after stasis started - created,
 *   written, chmod-ed, or copied up into the writable layer - is the container's own.
 *   stasis is PID 1, so its start is the container's; a file stasis put back at a
 *   restore has a new ctime too and so travels on to the next generation. A folder only
 *   needs to exist, so it counts when it was created since (its ctime changes with every
 *   file made in it); where the filesystem keeps no creation time, its ctime decides.
 * - STASIS_PRESERVE paths: wherever they are, except on a volume (already shared).
 * - volumes, read-only and kernel filesystems: never.
 */
export function shouldSave(held: HeldPath, facts: PathFacts, startedAt: number): boolean {
  switch (facts.storage) {
    case 'scratch':
      return true;
    case 'root':
      if (held.reason === 'preserve' || held.writable) return true;
      return (held.kind === 'dir' && facts.birthtime > 0 ? facts.birthtime : facts.ctime) > startedAt;
    case 'volume':
    case 'fixed':
      return false;
  }
}

/**
 * Pure: a path is excluded when it, or a folder above it, is under one of `roots`
 * (stasis's own checkpoint directory) or matches one of the STASIS_PRESERVE_EXCLUDE globs.
 */
export function isExcluded(path: string, globs: readonly string[], roots: readonly string[] = []): boolean {
  if (roots.some((root) => path === root || path.startsWith(`${root}/`))) return true;
  for (let current = path; ; current = dirname(current)) {
    if (globs.some((glob) => matchesGlob(current, glob))) return true;
    if (current === '/') return false;
  }
}

/** Pure: the folders between a mount point and a path on it, outermost first (the mount point exists already). */
export function foldersBetween(mountPoint: string, path: string): string[] {
  const folders: string[] = [];
  for (let current = dirname(path); current !== mountPoint && current !== '/' && current.startsWith(mountPoint); current = dirname(current)) {
    folders.unshift(current);
  }
  return folders;
}

/** Pure: undefined when the files fit, else why the dump fails, naming the biggest files. */
export function overLimit(entries: readonly Pick<PreservedEntry, 'path' | 'size'>[], limit: number): string | undefined {
  const total = entries.reduce((sum, entry) => sum + entry.size, 0);
  if (total <= limit) return undefined;
  const biggest = [...entries]
    .sort((a, b) => b.size - a.size)
    .slice(0, 5)
    .map((entry) => `${entry.path} (${formatBytes(entry.size)})`);
  return (
    `the files to preserve take ${formatBytes(total)} in ${entries.length} files, over STASIS_PRESERVE_LIMIT (${formatBytes(limit)}); ` +
    `the biggest: ${biggest.join(', ')}. Exclude some with STASIS_PRESERVE_EXCLUDE, move them to a volume, or raise STASIS_PRESERVE_LIMIT`
  );
}

/** What is at a saved entry's path now, at restore time (a file's sha256 only when its size is the saved one). */
export type Present =
  | { readonly kind: 'missing' }
  | { readonly kind: 'file'; readonly size: number; readonly mode: number; readonly uid: number; readonly gid: number; readonly sha256?: string }
  | { readonly kind: 'dir'; readonly mode: number; readonly uid: number; readonly gid: number }
  | { readonly kind: 'other' };

export type PutBack =
  /** write the saved copy (temp file + rename), then mode, owner and times */
  | { readonly action: 'write' }
  | { readonly action: 'mkdir' }
  /** same content: set mode and owner only */
  | { readonly action: 'chmod' }
  | { readonly action: 'keep' }
  /** the path now lives on a volume: what is there is the volume's, never overwritten */
  | { readonly action: 'skip'; readonly reason: string }
  | { readonly action: 'fail'; readonly reason: string };

/** Pure: what a restore does with one saved entry, given what is at its path now. */
export function putBackAction(entry: PreservedEntry, storage: Storage, present: Present): PutBack {
  if (storage === 'volume') return { action: 'skip', reason: 'it now lives on a volume' };
  if (storage === 'fixed' && present.kind === 'missing') return { action: 'fail', reason: 'it is missing on a read-only filesystem' };
  if (entry.type === 'dir') {
    if (present.kind === 'missing') return { action: 'mkdir' };
    return present.kind === 'dir' ? { action: 'keep' } : { action: 'fail', reason: 'a file is in the way of the folder' };
  }
  if (present.kind === 'missing') return { action: 'write' };
  if (present.kind !== 'file') return { action: 'fail', reason: `a ${present.kind === 'dir' ? 'folder' : 'non-regular file'} is in the way` };
  const sameContent = present.size === entry.size && present.sha256 !== undefined && present.sha256 === entry.sha256;
  // On a read-only filesystem the file must already be the one the app had.
  if (storage === 'fixed') return sameContent ? { action: 'keep' } : { action: 'fail', reason: 'it differs and lives on a read-only filesystem' };
  if (!sameContent) return { action: 'write' };
  const sameMeta = present.mode === entry.mode && present.uid === entry.uid && present.gid === entry.gid;
  return sameMeta ? { action: 'keep' } : { action: 'chmod' };
}
