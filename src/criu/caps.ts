import { readFileSync } from 'node:fs';

export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_PTRACE = 19;
export const CAP_CHECKPOINT_RESTORE = 40;

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
