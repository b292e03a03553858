import { readlinkSync, statSync } from 'node:fs';

export type FdKind = 'pipe' | 'socket' | 'tty' | 'null' | 'file' | 'anon' | 'closed';

export interface FdIdentity {
  readonly fd: number;
  readonly kind: FdKind;
  /** What /proc/PID/fd/N links to: `pipe:[15865]`, `/dev/null`, `/dev/pts/0`, ... */
  readonly target: string;
  /**
   * The key criu gives this file in its images and expects in `--inherit-fd fd[N]:KEY`;
   * set only for files that live outside the dumped tree and must be handed back
   * (pipes, sockets, terminals).
   */
  readonly inheritKey: string | null;
}

const TTY_MAJORS = new Set([4, 5, 136, 137, 138, 139, 140, 141, 142, 143]);

/** glibc's major(): bits 8-19 and 32-43. JS shifts work on 32 bits, so the high part is divided out. */
export function major(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

/** Pure: classifies a /proc fd link target (and, for char devices, its rdev). */
export function classifyFd(fd: number, target: string | null, rdev = 0, dev = 0): FdIdentity {
  if (target === null) return { fd, kind: 'closed', target: '', inheritKey: null };
  if (/^pipe:\[\d+\]$/.test(target)) return { fd, kind: 'pipe', target, inheritKey: target };
  if (/^socket:\[\d+\]$/.test(target)) return { fd, kind: 'socket', target, inheritKey: target };
  if (target === '/dev/null') return { fd, kind: 'null', target, inheritKey: null };
  if (target.startsWith('anon_inode:')) return { fd, kind: 'anon', target, inheritKey: null };
  if (rdev !== 0 && TTY_MAJORS.has(major(rdev))) {
    return { fd, kind: 'tty', target, inheritKey: `tty[${rdev.toString(16)}:${dev.toString(16)}]` };
  }
  return { fd, kind: 'file', target, inheritKey: null };
}

/** What fd N of process PID ('self' for stasis itself) is right now. */
export function identifyFd(pid: number | 'self', fd: number): FdIdentity {
  const path = `/proc/${pid}/fd/${fd}`;
  let target: string;
  try {
    target = readlinkSync(path);
  } catch {
    return classifyFd(fd, null);
  }
  let rdev = 0;
  let dev = 0;
  try {
    const stat = statSync(path);
    if (stat.isCharacterDevice()) {
      rdev = stat.rdev;
      dev = stat.dev;
    }
  } catch {
    // a file deleted since readlink: classified by its name alone
  }
  return classifyFd(fd, target, rdev, dev);
}

export function identifyStdio(pid: number | 'self'): FdIdentity[] {
  return [0, 1, 2].map((fd) => identifyFd(pid, fd));
}

/** The app gets stasis's stdin only when it is a pipe, socket or terminal; else /dev/null. */
export function passStdin(stdin: FdIdentity): boolean {
  return stdin.kind === 'pipe' || stdin.kind === 'tty' || stdin.kind === 'socket';
}
