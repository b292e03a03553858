/**
 * The criu side of lazy restores: the probe (can this criu + kernel do it?) and the
 * `criu lazy-pages` daemon that serves the images while the restored app runs.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ownByLibuv, releaseFromLibuv } from '../children.js';
import { LAZY_PAGES_LOG, LAZY_PAGES_SOCKET, lazyPagesArgs, lazyProbeArgs } from './args.js';
import { execFile } from './exec.js';
import { criuErrors, judgeLazyProbe, type LazySupport } from './log.js';

/** `criu check --feature uffd-noncoop` (with --unprivileged when criu runs so). */
export async function probeLazy(criu: string, unprivileged: boolean): Promise<LazySupport> {
  const result = await execFile(criu, lazyProbeArgs(unprivileged), { stdio: 'capture', timeoutMs: 30_000 });
  return judgeLazyProbe({ exitCode: result.exitCode, output: result.output === '' ? result.shortMessage : result.output });
}

export interface DaemonExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** ms from the daemon's start to its exit */
  readonly durationMs: number;
  /** criu's error lines from lazy-pages.log (or its stderr), when it failed */
  readonly errors: string[];
  /** Why its socket could not be removed (a stale one makes the next daemon on these images fail). */
  readonly cleanupError?: string;
}

export interface LazyDaemon {
  readonly pid: number;
  /** Resolves when the daemon has exited (its socket removed); never rejects. */
  readonly exited: Promise<DaemonExit>;
  /** SIGKILL, e.g. when the restore failed or stasis exits. */
  kill(): void;
}

/** How long the daemon may take to listen on its socket. */
const READY_MS = 30_000;
const STATUS_FD = 3;

/**
 * Starts `criu lazy-pages` on `imagesDir` in its own session (a terminal's ^C must not
 * reach it) and waits until it listens. libuv owns it, so the native reaper never takes
 * it for the app or an orphan. If stasis exits first, the daemon is killed.
 */
export async function startLazyDaemon(criu: string, imagesDir: string, unprivileged: boolean): Promise<LazyDaemon | { readonly errors: string[] }> {
  const started = performance.now();
  const socket = join(imagesDir, LAZY_PAGES_SOCKET);
  const logPath = join(imagesDir, LAZY_PAGES_LOG);
  const child = spawn(criu, lazyPagesArgs({ imagesDir, statusFd: STATUS_FD, unprivileged }), {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-8192)));
  const pid = child.pid;
  if (pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    return { errors: [`cannot run ${criu} lazy-pages: ${error.message}`] };
  }
  ownByLibuv(pid);
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const onStasisExit = (): void => {
    kill();
    rmSync(socket, { force: true });
  };
  process.once('exit', onStasisExit);
  const exited = new Promise<DaemonExit>((resolve) => {
    child.once('exit', (code, signal) => {
      releaseFromLibuv(pid);
      process.removeListener('exit', onStasisExit);
      void (async () => {
        const cleanupError = await rm(socket, { force: true }).then(
          () => undefined,
          (error: Error) => `cannot remove ${socket}: ${error.message}`,
        );
        const failed = code !== 0;
        const errors = failed ? await daemonErrors(logPath, stderr, code, signal) : [];
        resolve({ code, signal, durationMs: Math.round(performance.now() - started), errors, ...(cleanupError === undefined ? {} : { cleanupError }) });
      })();
    });
  });
  const status = child.stdio[STATUS_FD] as NodeJS.ReadableStream | null;
  const ready = new Promise<boolean>((resolve) => {
    status?.once('data', () => resolve(true));
    status?.once('end', () => resolve(false));
    status?.once('error', () => resolve(false));
    setTimeout(() => resolve(false), READY_MS).unref();
  });
  const listening = await Promise.race([ready, exited.then(() => false)]);
  (status as { destroy?: () => void } | null)?.destroy?.();
  if (!listening) {
    kill();
    const exit = await exited;
    return { errors: exit.errors.length > 0 ? exit.errors : ['criu lazy-pages did not report that it listens'] };
  }
  return { pid, exited, kill };
}

async function daemonErrors(logPath: string, stderr: string, code: number | null, signal: NodeJS.Signals | null): Promise<string[]> {
  const log = await readFile(logPath, 'utf8').catch(() => '');
  const errors = criuErrors(log);
  if (errors.length > 0) return errors;
  const fromStderr = criuErrors(stderr);
  if (fromStderr.length > 0) return fromStderr;
  return [signal === null ? `criu lazy-pages exited with code ${code ?? '?'}; see ${logPath}` : `criu lazy-pages was killed by ${signal}`];
}
