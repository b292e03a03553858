/**
 * Lazy restores (STASIS_LAZY): while the `criu lazy-pages` daemon still copies the
 * restored app's memory in, the app must not be dumped (its image would be
 * half-lazy) and its generation must not be pruned; if the daemon dies before every
 * page is in, the pages still missing would read as zeros, so the app is killed.
 */
import { rm } from 'node:fs/promises';
import type { DaemonExit, LazyDaemon } from '../criu/lazy.js';
import { processAlive, signalTree, type SignalFailure } from '../init/processes.js';
import type { Logger } from '../log.js';

/** How lazy serving ended: every page in; the app exited first (nothing left to serve); stopped as stasis exits; or the daemon failed. */
export type LazyEnd =
  | { readonly kind: 'served' }
  | { readonly kind: 'app-gone' }
  | { readonly kind: 'stopped' }
  | { readonly kind: 'failed'; readonly errors: readonly string[] };

/**
 * Pure: the daemon's exit judged with whether the app still runs. Exit 0 is success
 * (criu's daemon also ends cleanly when the app exits first); anything else is a
 * failure even if the app is gone by now (it may have crashed on zeroed pages).
 */
export function judgeLazyEnd(exit: Pick<DaemonExit, 'code' | 'signal' | 'errors'>, appAlive: boolean, stoppedByStasis = false): LazyEnd {
  if (stoppedByStasis && exit.signal === 'SIGKILL') return { kind: 'stopped' };
  if (exit.code !== 0 || exit.signal !== null) return { kind: 'failed', errors: exit.errors };
  return appAlive ? { kind: 'served' } : { kind: 'app-gone' };
}

/** A lazy restore whose daemon still copies pages in: dumps wait for `done`, stasis's exit calls `stop`. */
export interface LazyServing {
  readonly generation: number;
  /** Resolves once the serving ended; never rejects. */
  readonly done: Promise<LazyEnd>;
  /**
   * The supervisor has adopted the restored app: from now on its death is its exit
   * status. Until then the end of the serving is not acted on - an app killed before
   * it was adopted would be reaped as an orphan and its exit never seen.
   */
  adopted(): void;
  /**
   * For stasis's exit: lets the daemon end by itself (it does once the app is gone) or
   * kills it, and waits until its end is logged - also the failure that killed the app.
   */
  stop(): Promise<void>;
}

/** How long stasis, exiting, lets a daemon whose app is gone end by itself. */
const STOP_WAIT_MS = 2000;

export interface Served {
  readonly pid: number;
  readonly generation: number;
  /** bytes of the generation's pages images: the most the daemon copies */
  readonly bytes: number;
  /** the generation's restore-attempt record, removed only once every page is in */
  readonly attemptFile: string;
}

export interface LazyPorts {
  readonly processAlive: (pid: number) => boolean;
  readonly signalTree: (root: number, signal: NodeJS.Signals) => SignalFailure[];
}

/**
 * Follows the daemon of a successful lazy restore to its end: logs it, removes the
 * restore-attempt record when every page is in, and kills the app when the daemon
 * failed first.
 */
export function watchLazyServing(log: Logger, daemon: LazyDaemon, served: Served, ports: LazyPorts = { processAlive, signalTree }): LazyServing {
  let adopted = (): void => undefined;
  const adoption = new Promise<void>((resolve) => (adopted = resolve));
  let stopping = false;
  const done = Promise.all([daemon.exited, adoption]).then(async ([exit]): Promise<LazyEnd> => {
    const end = judgeLazyEnd(exit, ports.processAlive(served.pid), stopping);
    const fields = { generation: served.generation, pid: served.pid, daemon_pid: daemon.pid, duration_ms: exit.durationMs };
    if (exit.cleanupError !== undefined) log.warn({ ...fields, err: exit.cleanupError }, 'the lazy-pages daemon left its socket behind');
    if (end.kind === 'failed') {
      log.error(
        { ...fields, code: exit.code, signal: exit.signal, criu_errors: end.errors },
        "lazy restore failed: the lazy-pages daemon ended before every page was in; the app's memory is incomplete, killing it",
      );
      const failures = ports.signalTree(served.pid, 'SIGKILL');
      if (failures.length > 0) log.warn({ ...fields, failures }, 'cannot kill some of the app with incomplete memory');
      return end;
    }
    // the restore itself worked: every page is in, or the app ended (or stasis exits) before
    if (end.kind === 'served') log.info({ ...fields, bytes: served.bytes }, 'lazy restore complete: every page is in');
    else if (end.kind === 'stopped') log.info(fields, 'lazy-pages daemon stopped: stasis is exiting');
    else log.info({ ...fields, code: exit.code, signal: exit.signal }, 'lazy-pages daemon ended: the app exited before every page was in');
    await rm(served.attemptFile, { force: true }).catch((error: unknown) => {
      // left behind, it reads as a restore that never finished: the next start forgives one
      log.warn({ ...fields, file: served.attemptFile, err: (error as Error).message }, 'cannot remove the restore-attempt record');
    });
    return end;
  });
  const stop = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      done.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (ended) return;
    stopping = true;
    daemon.kill();
    await done;
  };
  return { generation: served.generation, done, adopted, stop };
}
