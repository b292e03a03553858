import type { OtherUser } from './caps.js';

/** Harmless on every run where CAP_SYS_RESOURCE is missing; never the reason for a failure. */
const HARMLESS = [/rlimit: Can't setup RLIMIT_NOFILE/];

/** criu's own error lines from its log, without the known-harmless ones; the last `max` kept. */
export function criuErrors(log: string, max = 12): string[] {
  const lines = log
    .split('\n')
    .filter((line) => /\bError\b|\(\d+\.\d+\) Error|^Error/.test(line))
    .filter((line) => !HARMLESS.some((pattern) => pattern.test(line)))
    .map((line) => line.replace(/^\(\s*\d+\.\d+\)\s*/, '').trim());
  return lines.slice(-max);
}

/** Parses `Version: 4.1.1` (criu --version) into [4, 1, 1]. */
export function parseCriuVersion(text: string): [number, number, number] | undefined {
  const match = /Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

/** What the caller knows about the app's processes, for the causes that name them. */
export interface CriuErrorFacts {
  /** The command of the process holding `pid` in this container, if any. */
  readonly whoHas?: (pid: number) => string | undefined;
  /** The app's processes whose resource limits stasis may not read (another user's). */
  readonly otherUsers?: readonly OtherUser[];
}

/**
 * Pure: a plain-words cause for criu error lines that are known to need an
 * operator's action, or undefined. `dir` is the checkpoint directory.
 */
export function explainCriuErrors(errors: readonly string[], dir: string, facts: CriuErrorFacts = {}): string | undefined {
  const text = errors.join('\n');
  if (/No space left on device|ENOSPC/i.test(text)) {
    return `the checkpoint volume is full (No space left on device) at ${dir}: give it more space than the app's memory, or lower STASIS_KEEP`;
  }
  if (/Disk quota exceeded|EDQUOT/i.test(text)) return `the disk quota of the checkpoint volume is exceeded at ${dir}`;
  if (/Read-only file system|EROFS/i.test(text)) return `the checkpoint volume is read-only at ${dir}`;
  const fork = /Can't fork for (\d+): File exists/.exec(text);
  if (fork) {
    const pid = Number(fork[1]);
    const who = facts.whoHas?.(pid);
    return `PID ${pid} of the checkpointed app is taken in this container${who === undefined ? '' : ` by "${who}"`}: nothing else may hold the app's PIDs when it is restored (keep STASIS_MIN_PID above the PIDs other processes get)`;
  }
  if (/Can't get rlimit \d+: Operation not permitted/.test(text)) return explainRlimit(facts.otherUsers ?? []);
  if (/sockets: Can't get 1:(16|34) opt: Operation not supported/.test(text)) {
    return 'this criu cannot dump sockets on Linux 6.16 or newer (SO_PASSCRED/SO_PASSSEC, criu issue 2705): use criu 4.2 or newer';
  }
  if (/suspending seccomp failed: Operation not permitted/.test(text)) {
    return "the app runs under a seccomp filter (e.g. podman's default), and criu may suspend it only with CAP_SYS_ADMIN: run the container with seccomp unconfined (seccompProfile type Unconfined; podman --security-opt seccomp=unconfined)";
  }
  if (/Iptables configuration failed/.test(text) && /exited, status=127/.test(text)) {
    return 'criu could not lock the network for TCP: iptables-restore is missing; install iptables, or pass "--network-lock nftables" in STASIS_CRIU_DUMP_OPTS and STASIS_CRIU_RESTORE_OPTS';
  }
  return undefined;
}

function explainRlimit(otherUsers: readonly OtherUser[]): string {
  const first = otherUsers[0];
  const who = first === undefined ? 'a process of the app runs as another user' : `process ${first.pid} of the app runs as uid ${first.uid}`;
  return `${who}; criu needs CAP_SYS_RESOURCE to read the resource limits of another user's process: add SYS_RESOURCE to the container's capabilities (securityContext.capabilities.add), or run the app as stasis's user`;
}

/** Pure: the same for an error of stasis's own file work (an errno code), or undefined. */
export function explainFsError(code: string | undefined, dir: string): string | undefined {
  if (code === 'ENOSPC') return explainCriuErrors(['ENOSPC'], dir);
  if (code === 'EDQUOT') return explainCriuErrors(['EDQUOT'], dir);
  if (code === 'EROFS') return explainCriuErrors(['EROFS'], dir);
  return undefined;
}

export type LazySupport = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Pure: judges `criu check --feature uffd-noncoop` (exit code, stdout+stderr; exit undefined: criu did not run). */
export function judgeLazyProbe(run: { readonly exitCode: number | undefined; readonly output: string }): LazySupport {
  if (run.exitCode === 0) return { ok: true };
  const errors = criuErrors(run.output).map((line) => line.replace(/^Error \([^)]*\):\s*/, ''));
  const why = errors.at(-1) ?? run.output.trim().split('\n').at(-1) ?? '';
  return {
    ok: false,
    reason: run.exitCode === undefined
      ? `cannot run criu check: ${why}`
      : `criu check --feature uffd-noncoop failed (exit ${run.exitCode})${why === '' ? '' : `: ${why}`}: this kernel or criu has no non-cooperative userfaultfd`,
  };
}
