import { readFile } from 'node:fs/promises';
import { formatDuration } from '../duration.js';
import { execFile } from './exec.js';
import { criuErrors, parseCriuVersion } from './log.js';

export interface CriuRun {
  readonly ok: boolean;
  readonly exitCode: number | undefined;
  readonly durationMs: number;
  /** criu's error lines from its log file (or why criu could not start). */
  readonly errors: string[];
  /** killed after STASIS_CRIU_TIMEOUT */
  readonly timedOut?: boolean;
}

export interface RunCriuOptions {
  /** criu's fds 0-2: stasis's own ('inherit', needed for --inherit-fd) or closed-off ('ignore'). */
  readonly stdio: 'inherit' | 'ignore';
  /** Where criu writes its log (`--log-file` is relative to the images dir). */
  readonly logPath: string;
  /** criu is killed (SIGKILL) after this long; null: no limit. */
  readonly timeoutMs: number | null;
}

/** Runs criu without a shell; its PID stays libuv's so the native reaper leaves it alone. */
export async function runCriu(criu: string, args: readonly string[], options: RunCriuOptions): Promise<CriuRun> {
  const started = performance.now();
  const result = await execFile(criu, args, { stdio: options.stdio === 'inherit' ? 'inherit' : 'capture', timeoutMs: options.timeoutMs });
  const durationMs = Math.round(performance.now() - started);
  if (result.exitCode === 0) return { ok: true, exitCode: 0, durationMs, errors: [] };
  let errors: string[];
  if (result.timedOut) {
    const log = await readFile(options.logPath, 'utf8').catch(() => '');
    errors = [...criuErrors(log), `criu did not finish within ${formatDuration(options.timeoutMs ?? 0)} (STASIS_CRIU_TIMEOUT) and was killed`];
  } else if (result.exitCode === undefined) {
    errors = [`cannot run ${criu}: ${result.shortMessage}`];
  } else {
    const log = await readFile(options.logPath, 'utf8').catch(() => '');
    errors = criuErrors(log);
    if (errors.length === 0) errors = criuErrors(result.output);
    if (errors.length === 0) errors = [`criu exited with code ${result.exitCode}; see ${options.logPath}`];
  }
  return { ok: false, exitCode: result.exitCode, durationMs, errors, timedOut: result.timedOut };
}

export interface CriuInfo {
  readonly path: string;
  readonly version: string;
}

/** `criu --version`: the version when criu runs and is >= 4, else why checkpoints cannot work. */
export async function probeCriu(criu: string): Promise<CriuInfo | { error: string }> {
  const result = await execFile(criu, ['--version'], { stdio: 'capture', timeoutMs: 10_000 });
  if (result.exitCode !== 0) return { error: `cannot run criu (${criu}): ${result.shortMessage}` };
  const version = parseCriuVersion(result.output);
  if (!version) return { error: `cannot read the version of ${criu}: ${result.output.slice(0, 200)}` };
  if (version[0] < 4) {
    return { error: `${criu} is version ${version.join('.')}; stasis needs criu 4 or newer (3.x fails on current kernels)` };
  }
  return { path: criu, version: version.join('.') };
}
