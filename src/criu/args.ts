export type TcpMode = 'established' | 'close' | 'off';

export interface DumpArgsInput {
  readonly pid: number;
  readonly imagesDir: string;
  /** 'continue': the app runs on; 'stop': it is left stopped so stasis decides after the commit. */
  readonly leave: 'continue' | 'stop';
  readonly tcp: TcpMode;
  readonly fileLocks: boolean;
  readonly extUnixSockets: boolean;
  readonly unprivileged: boolean;
  /** bytes: the largest deleted-but-open file criu copies into the images */
  readonly ghostLimit: number;
  readonly extra: readonly string[];
}

export const DUMP_LOG = 'dump.log';
export const RESTORE_LOG = 'restore.log';
export const RESTORE_PIDFILE = 'restore.pid';
/** The lazy-pages daemon's log, next to restore.log. */
export const LAZY_PAGES_LOG = 'lazy-pages.log';
/** The socket criu lazy-pages listens on and criu restore --lazy-pages connects to, in their work dir (the images dir). */
export const LAZY_PAGES_SOCKET = 'lazy-pages.socket';

export function dumpArgs(input: DumpArgsInput): string[] {
  return [
    'dump',
    '--tree', String(input.pid),
    '--images-dir', input.imagesDir,
    '--log-file', DUMP_LOG,
    '-v4',
    input.leave === 'continue' ? '--leave-running' : '--leave-stopped',
    ...(input.tcp === 'off' ? [] : ['--tcp-established']),
    '--ghost-limit', String(input.ghostLimit),
    ...commonOptions(input),
    ...input.extra,
  ];
}

export interface InheritedFd {
  /** criu's own fd that stands for the file (stasis hands its fds 0-2 to criu unchanged). */
  readonly fd: number;
  /** The dump-time key, exactly as criu wrote it: `pipe:[INODE]`, `socket:[INODE]`, `tty[RDEV:DEV]`. */
  readonly key: string;
}

/**
 * One `--inherit-fd` per distinct dump-time key of the app's stdio: when stdout and
 * stderr were the same pipe, the first fd stands for both.
 */
export function inheritedFds(stdio: readonly { fd: number; inheritKey: string | null }[]): InheritedFd[] {
  const seen = new Set<string>();
  const result: InheritedFd[] = [];
  for (const { fd, inheritKey } of stdio) {
    if (inheritKey === null || seen.has(inheritKey)) continue;
    seen.add(inheritKey);
    result.push({ fd, key: inheritKey });
  }
  return result;
}

export interface RestoreArgsInput {
  readonly imagesDir: string;
  readonly pidfile: string;
  readonly inherit: readonly InheritedFd[];
  readonly tcp: TcpMode;
  readonly fileLocks: boolean;
  readonly extUnixSockets: boolean;
  readonly unprivileged: boolean;
  /** --lazy-pages: memory comes from a running `criu lazy-pages` daemon on the same images dir. */
  readonly lazy: boolean;
  readonly extra: readonly string[];
}

/** Options that dump and restore must agree on. */
function commonOptions(input: { fileLocks: boolean; extUnixSockets: boolean; unprivileged: boolean }): string[] {
  return [
    ...(input.fileLocks ? ['--file-locks'] : []),
    ...(input.extUnixSockets ? ['--ext-unix-sk'] : []),
    ...(input.unprivileged ? ['--unprivileged'] : []),
  ];
}

export function restoreArgs(input: RestoreArgsInput): string[] {
  return [
    'restore',
    '--images-dir', input.imagesDir,
    '--log-file', RESTORE_LOG,
    '-v4',
    // -d -S: criu exits once the tree runs, and the restored root becomes stasis's
    // child, so stasis can waitpid it and report its exit status.
    '--restore-detached',
    '--restore-sibling',
    '--pidfile', input.pidfile,
    ...input.inherit.flatMap(({ fd, key }) => ['--inherit-fd', `fd[${fd}]:${key}`]),
    ...(input.lazy ? ['--lazy-pages'] : []),
    ...(input.tcp === 'established' ? ['--tcp-established'] : input.tcp === 'close' ? ['--tcp-close'] : []),
    ...commonOptions(input),
    ...input.extra,
  ];
}

export interface LazyPagesArgsInput {
  readonly imagesDir: string;
  /** criu's fd that gets a byte once the daemon listens on its socket. */
  readonly statusFd: number;
  readonly unprivileged: boolean;
}

/**
 * The lazy-pages daemon for one restore: in the foreground (stasis owns and waits
 * for it), serving the local images; it exits by itself once every page is in.
 * -v2 (errors and warnings): -v4 writes a line per page fault.
 */
export function lazyPagesArgs(input: LazyPagesArgsInput): string[] {
  return [
    'lazy-pages',
    '--images-dir', input.imagesDir,
    '--log-file', LAZY_PAGES_LOG,
    '-v2',
    '--status-fd', String(input.statusFd),
    ...(input.unprivileged ? ['--unprivileged'] : []),
  ];
}

/** The probe for lazy restores: criu needs non-cooperative userfaultfd (fork/remap/unmap events). */
export function lazyProbeArgs(unprivileged: boolean): string[] {
  return ['check', '--feature', 'uffd-noncoop', ...(unprivileged ? ['--unprivileged'] : [])];
}
