/**
 * PIDs of children that libuv spawned and will waitpid itself (the app when stasis
 * started it, every criu run). The native reaper must never touch them: libuv
 * silently loses a child that someone else reaped.
 */
const owned = new Set<number>();

export function ownByLibuv(pid: number | undefined): void {
  if (pid !== undefined) owned.add(pid);
}

export function releaseFromLibuv(pid: number | undefined): void {
  if (pid !== undefined) owned.delete(pid);
}

export function libuvChildren(): number[] {
  return [...owned];
}
