import { readFileSync } from 'node:fs';

export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_PTRACE = 19;
export const CAP_CHECKPOINT_RESTORE = 40;
export const CAP_SYS_RESOURCE = 24;

/** Pure: is capability `bit` set in a /proc/PID/status CapEff hex mask? */
export function hasCapability(capEffHex: string, bit: number): boolean {
  return ((BigInt(`0x${capEffHex.trim()}`) >> BigInt(bit)) & 1n) === 1n;
}

export function effectiveCaps(status = readFileSync('/proc/self/status', 'utf8')): string {
  return /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
}

/**
 * Without CAP_SYS_ADMIN criu must run with --unprivileged (it then needs only
 * CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE): the Kubernetes-friendly mode.
 */
export function needsUnprivileged(capEffHex = effectiveCaps()): boolean {
  return !hasCapability(capEffHex, CAP_SYS_ADMIN);
}

/** Real, effective and saved user and group IDs of a process. */
export interface Ids {
  readonly uids: readonly number[];
  readonly gids: readonly number[];
}

/** Pure: the Uid and Gid lines of /proc/PID/status (real, effective, saved, fs). */
export function idsFromStatus(status: string): Ids | undefined {
  const ids = (field: string): number[] | undefined => new RegExp(`^${field}:\\s*(\\d+)\\s+(\\d+)\\s+(\\d+)`, 'm').exec(status)?.slice(1).map(Number);
  const [uids, gids] = [ids('Uid'), ids('Gid')];
  return uids && gids ? { uids, gids } : undefined;
}

/**
 * Pure: does reading `target`'s resource limits (criu does on every dump) need
 * CAP_SYS_RESOURCE? The kernel allows prlimit without it only when the caller's real
 * uid and gid equal the target's real, effective and saved ones.
 */
export function limitsNeedSysResource(self: Ids, target: Ids): boolean {
  const [uid, gid] = [self.uids[0], self.gids[0]];
  return !target.uids.every((id) => id === uid) || !target.gids.every((id) => id === gid);
}

/** A process of the app that runs as another user than stasis. */
export interface OtherUser {
  readonly pid: number;
  /** its real uid */
  readonly uid: number;
}

/** The processes among `pids` whose limits this process cannot read without CAP_SYS_RESOURCE. */
export function otherUserProcesses(pids: readonly number[]): OtherUser[] {
  const self = idsFromStatus(readFileSync('/proc/self/status', 'utf8'));
  if (self === undefined) return [];
  return pids.flatMap((pid) => {
    let target: Ids | undefined;
    try {
      target = idsFromStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return [];
    }
    return target !== undefined && limitsNeedSysResource(self, target) ? [{ pid, uid: target.uids[0] ?? -1 }] : [];
  });
}
