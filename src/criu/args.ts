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
  readonly extra: readonly string[];
}

export const DUMP_LOG = 'dump.log';
export const RESTORE_LOG = 'restore.log';
export const RESTORE_PIDFILE = 'restore.pid';

export function dumpArgs(input: DumpArgsInput): string[] {
  return [
    'dump',
    '--tree', String(input.pid),
    '--images-dir', input.imagesDir,
    '--log-file', DUMP_LOG,
    '-v4',
    input.leave === 'continue' ? '--leave-running' : '--leave-stopped',
    ...(input.tcp === 'off' ? [] : ['--tcp-established']),
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
    ...(input.tcp === 'established' ? ['--tcp-established'] : input.tcp === 'close' ? ['--tcp-close'] : []),
    ...commonOptions(input),
    ...input.extra,
  ];
}
