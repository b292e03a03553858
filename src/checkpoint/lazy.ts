/**
 * Lazy restores (STASIS_LAZY): while the `criu lazy-pages` daemon still copies the
 * restored app's memory in, the app must not be dumped (its image would be
 * half-lazy) and its generation must not be pruned; if the daemon dies before every
 * page is in, the pages still missing would read as zeros, so the app is killed.
 */
import { rm } from 'node:fs/promises';
import type { DaemonExit, LazyDaemon } from '../criu/lazy.js';
import { processAlive, signalTree } from '../init/processes.js';
import type { CheckpointContext } from './context.js';

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

interface Serving {
  readonly done: Promise<LazyEnd>;
  readonly daemon: LazyDaemon;
  /** Called once the supervisor has adopted the app (see lazyAdopted). */
  readonly adopted: () => void;
  stopping: boolean;
}

/** The serving in progress per checkpoint context (one per stasis), removed once it ended. */
const serving = new WeakMap<CheckpointContext, Serving>();

/** The lazy restore still copying pages in, if any: dumps wait for it. */
export function lazyServing(context: CheckpointContext): Promise<LazyEnd> | undefined {
  return serving.get(context)?.done;
}

/**
 * The supervisor has adopted the restored app: from now on its death is its exit
 * status. Until then the end of the serving is not acted on - an app killed before
 * it was adopted would be reaped as an orphan and its exit never seen.
 */
export function lazyAdopted(context: CheckpointContext): void {
  serving.get(context)?.adopted();
}

/** How long stasis, exiting, lets a daemon whose app is gone end by itself. */
const STOP_WAIT_MS = 2000;

/**
 * For stasis's exit: lets the daemon end by itself (it does once the app is gone) or
 * kills it, and waits until its end is logged - also the failure that killed the app.
 */
export async function stopLazyServing(context: CheckpointContext): Promise<void> {
  const current = serving.get(context);
  if (current === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    current.done.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_WAIT_MS))),
  ]);
  clearTimeout(timer);
  if (ended) return;
  current.stopping = true;
  current.daemon.kill();
  await current.done;
}

export interface Served {
  readonly pid: number;
  readonly generation: number;
  /** bytes of the generation's pages images: the most the daemon copies */
  readonly bytes: number;
  /** the generation's restore-attempt record, removed only once every page is in */
  readonly attemptFile: string;
}

/**
 * Follows the daemon of a successful lazy restore to its end: logs it, removes the
 * restore-attempt record when every page is in, and kills the app when the daemon
 * failed first. Dumps requested meanwhile wait for it (see lazyServing).
 */
export function watchLazyServing(context: CheckpointContext, daemon: LazyDaemon, served: Served): Promise<LazyEnd> {
  const { log } = context;
  let adopted = (): void => undefined;
  const adoption = new Promise<void>((resolve) => (adopted = resolve));
  const done = Promise.all([daemon.exited, adoption]).then(async ([exit]): Promise<LazyEnd> => {
    const end = judgeLazyEnd(exit, processAlive(served.pid), current.stopping);
    const fields = { generation: served.generation, pid: served.pid, daemon_pid: daemon.pid, duration_ms: exit.durationMs };
    if (end.kind === 'served') {
      log.info({ ...fields, bytes: served.bytes }, 'lazy restore complete: every page is in');
      await rm(served.attemptFile, { force: true }).catch(() => undefined);
    } else if (end.kind === 'stopped' || end.kind === 'app-gone') {
      // the restore itself worked: the app ended (or stasis exits) before every page was in
      if (end.kind === 'stopped') log.info(fields, 'lazy-pages daemon stopped: stasis is exiting');
      else log.info({ ...fields, code: exit.code, signal: exit.signal }, 'lazy-pages daemon ended: the app exited before every page was in');
      await rm(served.attemptFile, { force: true }).catch(() => undefined);
    } else {
      log.error(
        { ...fields, code: exit.code, signal: exit.signal, criu_errors: end.errors },
        "lazy restore failed: the lazy-pages daemon ended before every page was in; the app's memory is incomplete, killing it",
      );
      signalTree(served.pid, 'SIGKILL');
    }
    serving.delete(context);
    return end;
  });
  const current: Serving = { done, daemon, adopted, stopping: false };
  serving.set(context, current);
  return done;
}
