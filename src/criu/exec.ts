import { spawn } from 'node:child_process';
import { ownByLibuv, releaseFromLibuv } from '../children.js';

export interface ExecOptions {
  /** 'inherit': stasis's fds 0-2; 'capture': stdin closed off, stdout and stderr read into the result. */
  readonly stdio: 'inherit' | 'capture';
  /** SIGKILL after this long; null: no limit. */
  readonly timeoutMs: number | null;
}

export interface ExecResult {
  /** undefined when the process could not be started or was killed by a signal */
  readonly exitCode: number | undefined;
  readonly timedOut: boolean;
  /** stdout then stderr ('' with stdio 'inherit') */
  readonly output: string;
  /** one line on what went wrong, for messages */
  readonly shortMessage: string;
}

/**
 * Runs `file` without a shell and waits for it; never rejects. Its PID is libuv's
 * (the native reaper leaves it alone) until libuv has reaped it. Plain child_process
 * rather than execa: this sits on the restore's critical path, and loading and
 * calling execa cost ~30 ms there (bench/README.md).
 */
export function execFile(file: string, args: readonly string[], options: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve) => {
    const command = [file, ...args].join(' ');
    const child = spawn(file, args, { stdio: options.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    ownByLibuv(child.pid);
    const chunks: { out: Buffer[]; err: Buffer[] } = { out: [], err: [] };
    child.stdout?.on('data', (chunk: Buffer) => chunks.out.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => chunks.err.push(chunk));
    let timedOut = false;
    const timer = options.timeoutMs === null ? undefined : setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), options.timeoutMs);
    const output = (): string => `${Buffer.concat(chunks.out).toString()}${Buffer.concat(chunks.err).toString()}`;
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      releaseFromLibuv(child.pid);
      resolve({ exitCode: undefined, timedOut, output: output(), shortMessage: error.message });
    });
    // 'close': the process has exited and its pipes are drained
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      releaseFromLibuv(child.pid);
      const how = timedOut ? `timed out after ${options.timeoutMs} ms` : signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
      resolve({ exitCode: code ?? undefined, timedOut, output: output(), shortMessage: `${command} ${how}` });
    });
  });
}
