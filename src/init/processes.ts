import { readdirSync, readFileSync } from 'node:fs';

export interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
}

/** Pure: parses /proc/PID/stat (the command name may hold spaces and parentheses). */
export function parseStat(text: string): ProcEntry | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number.parseInt(text, 10);
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  if (!Number.isInteger(pid) || state === undefined || !Number.isInteger(ppid)) return undefined;
  return { pid, ppid, state };
}

export function readProcTable(): ProcEntry[] {
  const entries: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const entry = parseStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (entry) entries.push(entry);
    } catch {
      // gone while we looked
    }
  }
  return entries;
}

/**
 * `root` and the processes below it, found through /proc/PID/task/TID/children
 * (what the native reaper reads too) instead of a scan of all of /proc: PID 1's
 * exit path reads this twice, and outside a PID namespace /proc holds the host's
 * every process.
 */
export function readProcTree(root: number): ProcEntry[] {
  const entries: ProcEntry[] = [];
  const seen = new Set<number>();
  for (const queue = [root]; queue.length > 0; ) {
    const pid = queue.pop() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    try {
      const entry = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      if (entry) entries.push(entry);
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ')) {
          if (child.trim() !== '') queue.push(Number(child));
        }
      }
    } catch {
      // gone while we looked
    }
  }
  return entries;
}

/** Pure: every process below `root` in the parent tree, zombies included. */
export function descendantsOf(root: number, table: readonly ProcEntry[]): ProcEntry[] {
  const children = new Map<number, ProcEntry[]>();
  for (const entry of table) {
    const list = children.get(entry.ppid) ?? [];
    list.push(entry);
    children.set(entry.ppid, list);
  }
  const result: ProcEntry[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      if (child.pid === root) continue;
      result.push(child);
      queue.push(child.pid);
    }
  }
  return result;
}

export function isAlive(entry: ProcEntry): boolean {
  return entry.state !== 'Z' && entry.state !== 'X';
}

/** A process that exists and has not exited (a zombie not yet reaped counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    const entry = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return entry !== undefined && isAlive(entry);
  } catch {
    return false;
  }
}

/** One process a signal could not reach for a reason other than its being gone already. */
export interface SignalFailure {
  readonly pid: number;
  readonly error: string;
}

export type Kill = (pid: number, signal: NodeJS.Signals | number) => void;

/**
 * Sends `signal` to each of `pids`, the one loop that kills what is left. A process
 * gone already (ESRCH) is what the caller wanted; other failures (EPERM) are returned
 * for the caller to log.
 */
export function signalEach(pids: readonly number[], signal: NodeJS.Signals, kill: Kill = process.kill): SignalFailure[] {
  const failures: SignalFailure[] = [];
  for (const pid of pids) {
    try {
      kill(pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') failures.push({ pid, error: (error as Error).message });
    }
  }
  return failures;
}

/** Sends `signal` to `root` and every process below it; returns what signalEach could not reach. */
export function signalTree(root: number, signal: NodeJS.Signals): SignalFailure[] {
  return signalEach([root, ...descendantsOf(root, readProcTable()).map((entry) => entry.pid)], signal);
}
