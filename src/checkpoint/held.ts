/**
 * What the app's process tree holds in the filesystem, read from /proc while criu
 * keeps the tree stopped: regular files open or mapped, the folders of the unix
 * sockets it has bound, and its working folders. Deleted files are left out: criu
 * saves their content itself (ghost files, STASIS_GHOST_LIMIT).
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { descendantsOf, readProcTable } from '../init/processes.js';
import type { HeldPath } from './files.js';

const DELETED = ' (deleted)';

/** Pure: file-backed mappings of /proc/PID/maps; a shared writable mapping writes into its file. */
export function parseMaps(text: string): { path: string; writable: boolean }[] {
  const result: { path: string; writable: boolean }[] = [];
  for (const line of text.split('\n')) {
    // address perms offset dev inode path (the path may hold spaces)
    const match = /^\S+\s+(\S{4})\s+\S+\s+\S+\s+\d+\s+(\/.*)$/.exec(line);
    if (!match) continue;
    const [, perms = '', path = ''] = match;
    if (path.endsWith(DELETED)) continue;
    result.push({ path, writable: perms[1] === 'w' && perms[3] === 's' });
  }
  return result;
}

/** Pure: socket inode -> bound path, from /proc/net/unix; abstract and unbound sockets are left out. */
export function parseNetUnix(text: string): Map<number, string> {
  const paths = new Map<number, string>();
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const match = /^\S+:\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)\s+(\/.*)$/.exec(line);
    if (match) paths.set(Number(match[1]), match[2] as string);
  }
  return paths;
}

/** Pure: was the fd opened for writing? (`flags:` of /proc/PID/fdinfo/N, octal; O_ACCMODE is 3) */
export function openedForWriting(fdinfo: string): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(fdinfo)?.[1];
  return flags !== undefined && (Number.parseInt(flags, 8) & 3) !== 0;
}

/** Pure: one entry per path; a path held for writing anywhere counts as written. */
export function mergeHeld(held: readonly HeldPath[]): HeldPath[] {
  const byPath = new Map<string, HeldPath>();
  for (const entry of held) {
    const known = byPath.get(entry.path);
    if (known === undefined) byPath.set(entry.path, entry);
    else if (entry.writable && !known.writable) byPath.set(entry.path, { ...known, writable: true });
  }
  return [...byPath.values()];
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function heldBy(pid: number, sockets: Map<number, string>): HeldPath[] {
  const held: HeldPath[] = [];
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return held; // gone, or a zombie
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const socket = /^socket:\[(\d+)\]$/.exec(target);
    if (socket) {
      const path = sockets.get(Number(socket[1]));
      if (path !== undefined) held.push({ path: dirname(path), kind: 'dir', reason: 'socket', writable: false });
      continue;
    }
    if (!target.startsWith('/')) continue;
    try {
      // the link names the file; stat through it sees the open file itself: nlink 0 = deleted
      const info = statSync(`/proc/${pid}/fd/${fd}`);
      if (!info.isFile() || info.nlink === 0) continue;
    } catch {
      continue;
    }
    held.push({ path: target, kind: 'file', reason: 'open', writable: openedForWriting(read(`/proc/${pid}/fdinfo/${fd}`) ?? '') });
  }
  for (const { path, writable } of parseMaps(read(`/proc/${pid}/maps`) ?? '')) {
    held.push({ path, kind: 'file', reason: 'mapped', writable });
  }
  try {
    const cwd = readlinkSync(`/proc/${pid}/cwd`);
    if (cwd.startsWith('/') && !cwd.endsWith(DELETED)) held.push({ path: cwd, kind: 'dir', reason: 'cwd', writable: false });
  } catch {
    // gone
  }
  return held;
}

/**
 * Every path the tree below (and including) `root` holds. Only stasis's own child
 * (the app) is looked at: never another process's files.
 */
export function collectHeld(root: number): HeldPath[] {
  const table = readProcTable();
  if (!table.some((entry) => entry.pid === root && entry.ppid === process.pid)) return [];
  const sockets = parseNetUnix(read(`/proc/${root}/net/unix`) ?? '');
  const pids = [root, ...descendantsOf(root, table).map((entry) => entry.pid)];
  return mergeHeld(pids.flatMap((pid) => heldBy(pid, sockets)));
}
