export interface ExitStatus {
  readonly code: number | null;
  readonly signal: number | null;
}

/** Exit code stasis reports for the app: its own code, 128+N for death by signal N, then remapped. */
export function exitCodeFor(status: ExitStatus, remap: ReadonlyMap<number, number>): number {
  const raw = status.signal !== null ? 128 + status.signal : (status.code ?? 0) & 0xff;
  return remap.get(raw) ?? raw;
}

/** Pure: stasis's own exit code once the app is gone: 0 when stasis ended it on purpose (a committed exit-mode dump), else the app's. */
export function finalExitCode(status: ExitStatus, remap: ReadonlyMap<number, number>, endedOnPurpose: boolean): number {
  return endedOnPurpose ? 0 : exitCodeFor(status, remap);
}

/** Exit code when the app could not be executed: 127 not found, 126 found but not runnable (POSIX shells). */
export function spawnFailureCode(errno: string | undefined): number {
  return errno === 'ENOENT' || errno === 'ENOTDIR' ? 127 : 126;
}

/** What a received signal becomes before forwarding; null means dropped. */
export function rewriteSignal(signal: number, rewrite: ReadonlyMap<number, number>): number | null {
  const to = rewrite.get(signal);
  if (to === undefined) return signal;
  return to === 0 ? null : to;
}

/** Documented exit codes of stasis itself. */
export const EXIT = {
  /** Bad configuration or usage: nothing was started. */
  usage: 2,
  /** Restore failed and STASIS_ON_RESTORE_FAILURE=exit. */
  restoreFailed: 3,
  /** Internal error of stasis. */
  internal: 1,
} as const;
