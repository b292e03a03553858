/**
 * Process helpers for the bench: running commands, "containers" (an init as PID 1
 * of a new PID and mount namespace, stdout and stderr real pipes), finding the
 * init's host PID, memory of a process, evicting files from the page cache.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const UNSHARE = ['unshare', '--pid', '--fork', '--mount-proc'] as const;

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a command to its end (no shell); rejects when it fails, unless `allowFail`. */
export function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; allowFail?: boolean } = {},
): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const ms = performance.now() - started;
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        if (error && !options.allowFail) {
          reject(new Error(`${file} ${args.join(' ')} failed (${error.message.split('\n')[0]}):\n${stderr.slice(-2000)}`));
        } else {
          resolve({ code, stdout, stderr, ms });
        }
      },
    );
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `everyMs` until it returns a value; throws naming `what` after `timeoutMs`. */
export async function poll<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 10): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function childrenOf(pid: number): number[] {
  const result: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) result.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return result;
}

/** Host PID of the process below `root` whose innermost PID is 1 (the init of the new namespace). */
export function namespaceInit(root: number): number | undefined {
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

/** Resident and proportional set size of a process, in KiB. */
export function memoryKiB(pid: number): { rss: number; pss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return {
    rss: Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? NaN),
    pss: Number(/^Pss:\s*(\d+)/m.exec(rollup)?.[1] ?? NaN),
  };
}

export function isAlive(pid: number): boolean {
  try {
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export function filesIn(dir: string): string[] {
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile());
}

export function bytesIn(dir: string): number {
  return filesIn(dir).reduce((sum, path) => sum + statSync(path).size, 0);
}

/** Drops these (already written back) files from the page cache: reads then come from the disk. */
export async function evict(paths: readonly string[]): Promise<void> {
  for (const path of paths) await run('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

export interface LogEvent {
  readonly msg: string;
  readonly [key: string]: unknown;
}

// bash makes real pipes (not the socket pairs Node would give) for the init's
// stdout and stderr, as a container runtime does; stdin stays /dev/null.
const PIPES = 'exec "$@" > >(exec cat) 2> >(exec cat >&2)';

/** An init as PID 1 of a new PID namespace, `INIT_ARGV...` run by unshare, with pipes for stdout/stderr. */
export class Container {
  /** every container not yet ended, for cleanup when the bench is interrupted */
  static readonly live = new Set<Container>();
  readonly child: ChildProcess;
  readonly started = performance.now();
  readonly done: Promise<number | null>;
  private out = '';
  private err = '';

  constructor(argv: readonly string[], env: NodeJS.ProcessEnv) {
    this.child = spawn('bash', ['-c', PIPES, 'bash', ...UNSHARE, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.out += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.err += chunk.toString()));
    Container.live.add(this);
    this.done = new Promise((resolve) =>
      this.child.on('close', (code) => {
        Container.live.delete(this);
        resolve(code);
      }),
    );
  }

  /** Kills every container still running (the bench was interrupted or failed). */
  static killAll(): void {
    for (const container of Container.live) {
      const init = container.child.pid === undefined ? undefined : namespaceInit(container.child.pid);
      if (init !== undefined) process.kill(init, 'SIGKILL');
      container.child.kill('SIGKILL');
    }
  }

  get stdout(): string {
    return this.out;
  }

  events(): LogEvent[] {
    return this.err
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogEvent];
        } catch {
          return [];
        }
      });
  }

  /** Resolves with the event and the ms since the container was started; throws on an error-level event. */
  async waitForEvent(msg: string, timeoutMs: number): Promise<{ event: LogEvent; atMs: number }> {
    const event = await poll(
      `log event "${msg}"`,
      () => {
        const events = this.events();
        const error = events.find((e) => Number(e.level) >= 50);
        if (error) throw new Error(`stasis logged an error while the bench waited for "${msg}": ${JSON.stringify(error).slice(0, 1500)}`);
        return events.find((e) => e.msg === msg);
      },
      timeoutMs,
      5,
    );
    return { event, atMs: performance.now() - this.started };
  }

  async waitForStdout(text: string, timeoutMs: number): Promise<number> {
    await poll(`"${text}" on stdout (stderr: ${this.tail()})`, () => (this.out.includes(text) ? true : undefined), timeoutMs, 5);
    return performance.now() - this.started;
  }

  async initPid(): Promise<number> {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error('container did not start');
    return poll('the init as PID 1 of the container', () => namespaceInit(pid), 10_000, 2);
  }

  async signal(signal: NodeJS.Signals): Promise<void> {
    process.kill(await this.initPid(), signal);
  }

  /** Ends the container: SIGKILL to its init ends the whole PID namespace. */
  async kill(): Promise<void> {
    const pid = this.child.pid;
    const init = pid === undefined ? undefined : namespaceInit(pid);
    if (init !== undefined) process.kill(init, 'SIGKILL');
    await Promise.race([this.done, sleep(5000)]);
  }

  tail(): string {
    return this.err.slice(-1500);
  }
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;
