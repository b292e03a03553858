/**
 * A "container" for the checkpoint tests: stasis as PID 1 of a new PID and mount
 * namespace (`unshare --pid --fork --mount-proc`, with its own fresh /tmp and /run)
 * whose stdin, stdout and stderr are anonymous pipes, as a container runtime provides them.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Captured } from './captured.js';
import { BASE_ENV, ROOT, STASIS_BIN, inNamespace, childrenOf, poll, statOf } from './stasis.js';

export const CRIU = process.env.STASIS_TEST_CRIU ?? join(ROOT, '.cache/criu/bin/criu');

export function missingCriu(): string | null {
  return existsSync(CRIU) ? null : `no criu at ${CRIU}: run scripts/install-criu.sh (or set STASIS_TEST_CRIU)`;
}

// bash makes the pipes: stdin from a sleeping writer, stdout and stderr into cat. The
// braces keep the process substitutions children of bash, which ends the writer; the
// parent-death signal ends it too when bash itself is killed (kill() below, a timeout).
const SHELL = `{ "$@"; } < <(exec setpriv --pdeathsig KILL sleep 86400 2>/dev/null) > >(exec cat) 2> >(exec cat >&2)
rc=$?
pkill -P $$ -x sleep
exit $rc`;

export interface ContainerOptions {
  /** flags for stasis before `--` */
  readonly stasisArgs?: readonly string[];
  /** also a new network namespace (`unshare --net`) with lo up, as a pod has */
  readonly net?: boolean;
}

export class Container extends Captured {
  constructor(command: readonly string[], env: Readonly<Record<string, string>>, options: ContainerOptions = {}) {
    const stasis = [STASIS_BIN, ...(options.stasisArgs ?? []), '--', ...command];
    const child = spawn('bash', ['-c', SHELL, 'bash', ...inNamespace(stasis, { net: options.net === true })], {
      env: { ...BASE_ENV, STASIS_CRIU: CRIU, STASIS_LOG_FORMAT: 'json', ...env },
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    super(child, 'the container', 15_000);
  }

  /** Also what every process of the container is doing, for a wait that timed out. */
  protected override tail(): string {
    const shell = this.child.pid;
    return `${super.tail()}; processes ${shell === undefined ? 'none' : processTree(shell)}`;
  }

  /** Host PID of stasis: the process below bash whose innermost PID is 1. */
  async stasisPid(): Promise<number> {
    const shell = this.child.pid;
    if (shell === undefined) throw new Error('container did not start');
    return poll('stasis as PID 1 of the container', () => findNamespaceInit(shell));
  }

  async signal(signal: NodeJS.Signals): Promise<void> {
    process.kill(await this.stasisPid(), signal);
  }

  async kill(): Promise<void> {
    const shell = this.child.pid;
    const init = shell === undefined ? undefined : findNamespaceInit(shell);
    if (init !== undefined) process.kill(init, 'SIGKILL');
    this.child.kill('SIGKILL');
  }
}

function findNamespaceInit(root: number): number | undefined {
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of childrenOf(pid)) {
      try {
        const nspid = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
        if (nspid && nspid.length > 1 && nspid.at(-1) === '1') return child;
      } catch {
        continue;
      }
      queue.push(child);
    }
  }
  return undefined;
}

/** Numbers N of the `PREFIX N` lines, in order. */
export function counts(lines: readonly string[], prefix: string): number[] {
  return lines.filter((line) => line.startsWith(`${prefix} `)).map((line) => Number(line.slice(prefix.length + 1)));
}

/** Asserts a run of consecutive numbers starting at `first`: an output that continues without a gap or a repeat. */
export function expectRun(first: number, numbers: readonly number[]): void {
  expect(numbers.length).toBeGreaterThan(0);
  expect(numbers).toEqual(numbers.map((_, i) => first + i));
}

/** Open file descriptors of a process, as the test sees /proc/PID/fd. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Children of `pid` that are zombies (exited, not yet reaped). */
export function zombieChildren(pid: number): number[] {
  return childrenOf(pid).filter((child) => statOf(child)?.state === 'Z');
}

/** `pid comm state wchan` of `root` and everything below it, e.g. "12 stasis S ep_poll, 13 ...". */
function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function processTree(root: number): string {
  const lines: string[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined && lines.length < 50; pid = queue.shift()) {
    const stat = statOf(pid);
    let wchan = '?';
    try {
      wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8') || '-';
    } catch {
      // gone
    }
    // a process that is running (wchan 0) or stuck in the kernel: where, for the next look at a timeout
    const syscall = readOr(`/proc/${pid}/syscall`).split(' ')[0] ?? '?';
    const stack = readOr(`/proc/${pid}/stack`).split('\n').slice(0, 3).map((line) => line.replace(/^\[<[0-9a-f]+>\] /, '')).join('<');
    lines.push(`${pid} ${stat?.comm ?? '?'} ${stat?.state ?? '?'} ${wchan} syscall=${syscall}${stack === '' ? '' : ` stack=${stack}`}`);
    queue.push(...childrenOf(pid));
  }
  return lines.join(', ');
}
