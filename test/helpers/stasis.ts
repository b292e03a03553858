/**
 * Runs the real stasis binary, as PID 1 of a new PID namespace (`unshare --pid --fork
 * --mount-proc`) or as a plain child of the test (then stasis is a subreaper).
 * STASIS_BIN overrides the binary (e.g. the single executable dist/stasis).
 */
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const STASIS_BIN = resolve(ROOT, process.env.STASIS_BIN ?? 'bin/stasis');
export const FIXTURES = join(ROOT, 'test/fixtures');
export const fixture = (name: string): string => join(FIXTURES, name);
/** The e2e tests' TMPDIR: outside /tmp, which every test container has its own of. */
export const E2E_TMPDIR = '/var/tmp/stasis-e2e';

/** A clean environment, so a developer's STASIS_* exports never leak into a test. */
export const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
};

export type Stdin =
  /** stasis's stdin is /dev/null (the default) */
  | 'null'
  /** a socket pair left open: write with `handle.child.stdin` (Node's 'pipe' is a socket) */
  | 'open'
  /** this data through a socket pair (Node's 'pipe'), then EOF */
  | { socket: string | Buffer }
  /** this data through a real pipe(2): `printf | stasis` run by sh */
  | { pipe: string }
  /** this file descriptor (e.g. an open regular file) */
  | { fd: number }
  /** a pseudo-terminal (stasis runs under `script`; its stdout and stderr are the terminal too) */
  | 'tty';

export interface StartOptions {
  /** argv after the binary, e.g. ['--', 'sh', '-c', 'exit 3'] */
  readonly args: readonly string[];
  /** added to BASE_ENV */
  readonly env?: Readonly<Record<string, string>>;
  /** true: stasis is PID 1 of a new PID namespace with its own /proc */
  readonly namespace: boolean;
  readonly stdin?: Stdin;
  readonly cwd?: string;
  /** give stasis these extra open fds (sockets; Node itself marks inherited fds up to ~18 close-on-exec) */
  readonly extraFds?: readonly number[];
  /** kill everything and fail after this long (default 60 s) */
  readonly timeoutMs?: number;
}

export interface LogEvent {
  readonly level: number;
  readonly msg: string;
  readonly time: number;
  readonly [key: string]: unknown;
}

export interface StasisResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
  /** stasis's JSON log lines from stderr */
  readonly events: readonly LogEvent[];
  /** from spawn to exit */
  readonly ms: number;
  /** performance.now() when the process exited */
  readonly endedAt: number;
}

/** Generous: the machine has 2 cores and may be busy with other work; these only bound a failure. */
const WAIT_MS = 30_000;
const RUN_MS = 60_000;
/** Foreground runs started at once by one test file: more only adds CPU contention on 2 cores. */
const PARALLEL_RUNS = 3;

function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * `command` as PID 1 of a new PID and mount namespace (and network namespace with
 * `net`, lo up, as a pod has) with a fresh tmpfs on /tmp and /run, as every new pod
 * gets: nothing passes between containers (or from the host) through them; what a
 * test shares with its container lives under TMPDIR (see global-setup.ts). PID 1 is
 * a shell that mounts them and execs the command.
 */
export function inNamespace(command: readonly string[], options: { readonly net?: boolean } = {}): string[] {
  const setup = [
    'mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp',
    'mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run',
    ...(options.net ? ['ip link set lo up'] : []),
  ];
  return ['unshare', '--pid', '--fork', '--mount-proc', ...(options.net ? ['--net'] : []), 'sh', '-c', `${setup.join(' && ')} && exec "$@"`, 'sh', ...command];
}

function commandLine(options: StartOptions): string[] {
  const stasis = options.namespace ? inNamespace([STASIS_BIN]) : [STASIS_BIN];
  const argv = [...stasis, ...options.args];
  const stdin = options.stdin;
  if (typeof stdin === 'object' && 'pipe' in stdin) {
    return ['sh', '-c', 'data=$1; shift; printf %s "$data" | "$@"', 'sh', stdin.pipe, ...argv];
  }
  if (stdin === 'tty') return ['script', '-qec', argv.map(quote).join(' '), '/dev/null'];
  return argv;
}

function stdio(options: StartOptions): StdioOptions {
  const stdin = options.stdin ?? 'null';
  const zero =
    stdin === 'null' ? 'ignore' : stdin === 'open' || stdin === 'tty' || 'socket' in stdin ? 'pipe' : 'pipe' in stdin ? 'ignore' : stdin.fd;
  const extra = options.extraFds ?? [];
  const length = Math.max(3, ...extra.map((fd) => fd + 1));
  return Array.from({ length }, (_, fd) => (fd === 0 ? zero : fd <= 2 || extra.includes(fd) ? 'pipe' : 'ignore'));
}

/** Live PIDs of the children of `pid` (all its threads), as seen from the test. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `stasis checkpoint ARGS` from a second process, as a preStop hook runs it. */
export function stasisCheckpoint(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(STASIS_BIN, ['checkpoint', ...args], { env: { ...BASE_ENV, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

export function childrenOf(pid: number): number[] {
  const result: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return result;
  }
  for (const task of tasks) {
    try {
      for (const word of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(/\s+/)) {
        if (word !== '') result.push(Number(word));
      }
    } catch {
      // thread gone
    }
  }
  return [...new Set(result)];
}

export interface Stat {
  readonly pid: number;
  readonly comm: string;
  readonly state: string;
  readonly ppid: number;
  readonly pgrp: number;
  readonly session: number;
}

/** /proc/PID/stat of a process as the test sees it; undefined once it is gone. */
export function statOf(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const [state = '', ppid, pgrp, session] = text.slice(close + 2).split(' ');
  return { pid, comm: text.slice(open + 1, close), state, ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session) };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Polls `check` every 10 ms until it returns a value other than undefined, or throws after `ms`. */
export async function poll<T>(what: string, check: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

function parseEvents(stderr: string): LogEvent[] {
  const events: LogEvent[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const event = JSON.parse(line) as unknown;
      if (typeof event === 'object' && event !== null && (event as { name?: unknown }).name === 'stasis') events.push(event as LogEvent);
    } catch {
      // not a log line
    }
  }
  return events;
}

/** A stasis process running in the background. */
export class StasisProcess {
  readonly child: ChildProcess;
  readonly result: Promise<StasisResult>;
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private exited = false;
  private timedOut = false;
  private readonly waiters = new Set<() => void>();
  private readonly started = performance.now();

  constructor(readonly options: StartOptions) {
    const [file, ...args] = commandLine(options) as [string, ...string[]];
    this.child = spawn(file, args, { env: { ...BASE_ENV, ...options.env }, cwd: options.cwd ?? ROOT, stdio: stdio(options) });
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.out.push(chunk);
      this.wake();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => this.err.push(chunk));
    const stdin = options.stdin;
    if (typeof stdin === 'object' && 'socket' in stdin) this.child.stdin?.end(stdin.socket);
    this.child.stdin?.on('error', () => {}); // EPIPE when stasis or the app is gone
    const timeout = setTimeout(() => void this.kill(), options.timeoutMs ?? RUN_MS);
    this.result = new Promise<StasisResult>((done, fail) => {
      this.child.once('error', fail);
      this.child.once('close', (code, signal) => {
        clearTimeout(timeout);
        const endedAt = performance.now();
        this.exited = true;
        this.wake();
        const stdoutBytes = Buffer.concat(this.out);
        const stderr = Buffer.concat(this.err).toString('utf8');
        const result = { code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr, events: parseEvents(stderr), ms: endedAt - this.started, endedAt };
        if (this.timedOut) fail(new Error(`stasis timed out; ${describe(result)}`));
        else done(result);
      });
    });
    // Callers that only await waitFor() must not get an unhandled rejection.
    this.result.catch(() => {});
  }

  private wake(): void {
    for (const waiter of this.waiters) waiter();
  }

  get stdout(): string {
    return Buffer.concat(this.out).toString('utf8');
  }

  get stderr(): string {
    return Buffer.concat(this.err).toString('utf8');
  }

  /** stdout lines so far (complete lines only). */
  lines(): string[] {
    const text = this.stdout;
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').slice(0, -1);
  }

  /** Resolves once stdout holds a line that matches (a string matches a whole line); rejects if stasis exits first. */
  waitFor(pattern: string | RegExp | ((lines: string[]) => boolean), ms = WAIT_MS): Promise<void> {
    const matches = (): boolean => {
      const lines = this.lines();
      if (typeof pattern === 'function') return pattern(lines);
      return lines.some((line) => (typeof pattern === 'string' ? line === pattern : pattern.test(line)));
    };
    return new Promise((done, fail) => {
      const check = (): void => {
        if (matches()) finish();
        else if (this.exited) finish(new Error(`stasis exited before stdout had ${String(pattern)}; stdout: ${JSON.stringify(this.stdout)} stderr: ${this.stderr}`));
      };
      const timer = setTimeout(() => finish(new Error(`no ${String(pattern)} on stdout within ${ms} ms; stdout: ${JSON.stringify(this.stdout)} stderr: ${this.stderr}`)), ms);
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (error) fail(error);
        else done();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** PID of the stasis process as the test sees it (in a namespace: unshare's child). */
  async pid(): Promise<number> {
    const own = this.child.pid;
    if (own === undefined) throw new Error('stasis did not start');
    const stdin = this.options.stdin;
    if (stdin === 'tty' || (typeof stdin === 'object' && 'pipe' in stdin)) throw new Error('pid() needs stasis to be the spawned process');
    if (!this.options.namespace) return own;
    return poll(
      'the stasis process under unshare',
      () => {
        const [pid, ...more] = childrenOf(own);
        return pid !== undefined && more.length === 0 ? pid : undefined;
      },
      WAIT_MS,
    );
  }

  /**
   * PID of the app as the test sees it: the child of stasis whose command name is
   * `comm` (a name is needed: before bin/stasis execs node, its shell has children too).
   */
  async appPid(comm: string): Promise<number> {
    const stasis = await this.pid();
    return poll(`a child of stasis named ${comm}`, () => childrenOf(stasis).find((pid) => statOf(pid)?.comm === comm), WAIT_MS);
  }

  /** Sends `signal` to the stasis process itself (never to unshare). */
  async signal(signal: NodeJS.Signals): Promise<void> {
    process.kill(await this.pid(), signal);
  }

  /** Kills stasis, everything below it (a namespace dies with its PID 1) and the wrapper; for clean-up after a failure. */
  async kill(): Promise<void> {
    if (this.exited) return;
    this.timedOut = true;
    const own = this.child.pid;
    // Once the child has been reaped its PID may belong to someone else: no signals by PID then.
    if (own !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      const tree = [own];
      for (let i = 0; i < tree.length; i++) tree.push(...childrenOf(tree[i] as number));
      for (const pid of tree.reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    // A survivor holding stdout open must not keep 'close' from firing.
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }
}

export function startStasis(options: StartOptions): StasisProcess {
  return new StasisProcess(options);
}

let runs = 0;
const queue: (() => void)[] = [];

/** Runs stasis to the end (at most PARALLEL_RUNS at a time per test file; the timeout counts from the start). */
export async function runStasis(options: StartOptions): Promise<StasisResult> {
  if (runs < PARALLEL_RUNS) runs++;
  else await new Promise<void>((resume) => queue.push(resume)); // the slot is handed over
  try {
    return await startStasis(options).result;
  } finally {
    const next = queue.shift();
    if (next) next();
    else runs--;
  }
}

/** For assertion messages. */
export function describe(result: StasisResult): string {
  return `code=${result.code} signal=${result.signal} stdout=${JSON.stringify(result.stdout.slice(0, 2000))} stderr=${JSON.stringify(result.stderr.slice(0, 4000))}`;
}

/** Runs `fn` over `items` with at most `limit` at a time, keeping the order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** What the e2e tests need before they can run; null when all is there. */
export function missingBuild(): string | null {
  const needed = process.env.STASIS_BIN ? [STASIS_BIN] : [STASIS_BIN, join(ROOT, 'dist/js/main.js'), join(ROOT, 'build/Release/stasis.node')];
  const missing = needed.filter((path) => !existsSync(path));
  return missing.length === 0 ? null : `missing ${missing.join(', ')}: run npm run build first`;
}
