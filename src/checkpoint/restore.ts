import { readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { libuvChildren } from '../children.js';
import { inheritedFds, restoreArgs, RESTORE_LOG, RESTORE_PIDFILE } from '../criu/args.js';
import type { LazyDaemon } from '../criu/lazy.js';
import { explainCriuErrors } from '../criu/log.js';
import { parseStatsImage } from '../criu/stats.js';
import { descendantsOf, signalEach } from '../init/processes.js';
import { recordRestore, restoreRecord, type RestoreSummary } from './history.js';
import { watchLazyServing, type LazyServing } from './lazy.js';
import { fingerprint, RESTORE_ATTEMPT_FILE } from './layout.js';
import type { PreservedEntry } from './files.js';
import { systemPorts, type CheckpointPorts } from './ports.js';
import { putBackFiles } from './preserve.js';
import { describeFsFailure, imageSizes, judge, listGenerations, quarantine, type Generation } from './store.js';
import type { RestoreContext } from './context.js';

export type RestoreOutcome =
  | Exclude<RestoreSummary, { kind: 'restored' }>
  /** lazy: the app runs while a lazy-pages daemon still copies its memory in (see lazy.ts) */
  | { readonly kind: 'restored'; readonly pid: number; readonly generation: number; readonly lazy?: LazyServing };

/**
 * Restores the newest generation that belongs to this app. A generation that is
 * broken or fails to restore goes to quarantine; with STASIS_ON_RESTORE_FAILURE=fresh
 * the next older one is tried, else the failure is returned at once. The outcome is
 * recorded in $STASIS_DIR/last-restore.json for `stasis status`.
 */
export interface RestoreHooks {
  /** Called as soon as the first `criu restore` has been spawned: setup that can wait goes after it. */
  readonly criuStarted?: () => void;
  /** Why criu cannot run here, if so (its probe runs beside the restore): then a failed restore is not the generation's fault. */
  readonly criuProblem?: () => Promise<string | undefined>;
}

export async function restoreNewest(context: RestoreContext, ports: CheckpointPorts = systemPorts, hooks: RestoreHooks = {}): Promise<RestoreOutcome> {
  const started = performance.now();
  const outcome = await tryGenerations(context, ports, hooks).catch(async (error: unknown): Promise<RestoreOutcome> => {
    // e.g. a read-only or vanished volume: PID 1 must still start the app
    const reason = await describeFsFailure(context.dir, error);
    const exit = context.config.onRestoreFailure === 'exit';
    context.log.error({ dir: context.dir, reason, err: (error as Error).message }, exit ? 'cannot use the checkpoints' : 'cannot use the checkpoints; starting fresh');
    return exit ? { kind: 'failed', generation: 0, criuErrors: [reason] } : { kind: 'none' };
  });
  const summary: RestoreSummary = outcome.kind === 'restored' ? { ...outcome, lazy: outcome.lazy !== undefined } : outcome;
  if (!(await recordRestore(context.dir, restoreRecord(summary, performance.now() - started, new Date())))) {
    context.log.warn({ dir: context.dir }, 'cannot record this restore for `stasis status`; it shows an older one');
  }
  return outcome;
}

async function tryGenerations(context: RestoreContext, ports: CheckpointPorts, hooks: RestoreHooks): Promise<RestoreOutcome> {
  const { config, dir, log } = context;
  const expected = fingerprint(context.argv, config.appVersion);
  for (const generation of await listGenerations(dir)) {
    const verdict = await judge(generation, expected);
    if (verdict.kind === 'foreign') {
      log.warn({ generation: generation.generation, reason: verdict.reason }, 'checkpoint ignored');
      continue;
    }
    if (verdict.kind === 'broken') {
      const where = await quarantine(dir, generation, verdict.reason);
      log.error({ generation: generation.generation, reason: verdict.reason, quarantined: where }, 'checkpoint unusable, quarantined');
      if (config.onRestoreFailure === 'exit') return { kind: 'failed', generation: generation.generation, criuErrors: [verdict.reason] };
      continue;
    }
    // Each restore of a generation is recorded first and the record removed once it succeeded:
    // records left over mean earlier starts died while restoring it (criu hung and the pod was
    // killed, OOM). One such interruption is forgiven, the second quarantines the generation.
    const attempt = join(generation.path, RESTORE_ATTEMPT_FILE);
    const unfinished = await readUnfinished(attempt, log);
    if (unfinished.length >= MAX_UNFINISHED_RESTORES) {
      const reason = `${unfinished.length} restores of this generation started (${unfinished.join(', ')}) and never finished (criu hung, or stasis was killed while restoring); not trying it again`;
      const where = await quarantine(dir, generation, reason);
      log.error({ generation: generation.generation, reason, quarantined: where }, 'checkpoint unusable, quarantined');
      if (config.onRestoreFailure === 'exit') return { kind: 'failed', generation: generation.generation, criuErrors: [reason] };
      continue;
    }
    if (unfinished.length > 0) log.warn({ generation: generation.generation, unfinished }, 'an earlier restore of this generation never finished; trying once more');
    if (!(await recordAttempt(context, generation, attempt, unfinished, ports))) {
      if (config.onRestoreFailure === 'exit') return { kind: 'failed', generation: generation.generation, criuErrors: [UNGUARDED] };
      continue;
    }
    const outcome = (await putBack(context, generation, verdict.metadata.files)) ?? (await restoreGeneration(context, generation, verdict.metadata.stdio, attempt, ports, hooks));
    if (outcome.kind === 'restored') {
      // a lazy restore is finished only once every page is in: lazy.ts removes the record then
      if (outcome.lazy === undefined) {
        await rm(attempt, { force: true }).catch((error: unknown) => {
          // left behind, it reads as a restore that never finished: the next start forgives one
          log.warn({ generation: generation.generation, file: attempt, err: (error as Error).message }, 'cannot remove the restore-attempt record');
        });
      }
      return outcome;
    }
    if ((await hooks.criuProblem?.()) !== undefined) {
      // no usable criu: checkpoints are off (the caller says why), the generation stays as it is
      await rm(attempt, { force: true }).catch(() => undefined);
      return { kind: 'none' };
    }
    const reason = explainCriuErrors(outcome.criuErrors, dir, { whoHas: commandOf });
    const where = await quarantine(dir, generation, `criu restore failed${reason ? `: ${reason}` : ''}:\n${outcome.criuErrors.join('\n')}`);
    log.error(
      { generation: generation.generation, ...(reason ? { reason } : {}), criu_errors: outcome.criuErrors, quarantined: where },
      config.onRestoreFailure === 'exit' ? 'restore failed' : 'restore failed; trying an older generation or a fresh start',
    );
    if (config.onRestoreFailure === 'exit') return outcome;
  }
  return { kind: 'none' };
}

/**
 * The restores of a generation that started and never finished (one line each). A record
 * that exists but cannot be read counts as one: the guard must not go blind.
 */
async function readUnfinished(attempt: string, log: RestoreContext['log']): Promise<string[]> {
  try {
    return (await readFile(attempt, 'utf8')).split('\n').filter((line) => line !== '');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    log.warn({ file: attempt, err: (error as Error).message }, 'cannot read the restore-attempt record; counting it as one unfinished restore');
    return ['(unreadable record)'];
  }
}

/** Restores of one generation that may die unfinished before it is quarantined. */
const MAX_UNFINISHED_RESTORES = 2;

const UNGUARDED = 'an earlier restore of this generation never finished, and this one could not be recorded; not restoring it blind a second time';

/**
 * Appends this restore to the generation's attempt record, the crash-loop guard. When the
 * record cannot be written (a full or read-only volume), the guard cannot count this
 * attempt. A first attempt is still made - a full volume must not cost the app its
 * state - but never a second one blind: with an earlier restore already unfinished,
 * the generation is skipped (false), like a failed restore, and not quarantined (it may
 * be fine; the next start with a writable volume tries it under the guard).
 */
async function recordAttempt(
  context: RestoreContext,
  generation: Generation,
  attempt: string,
  unfinished: readonly string[],
  ports: CheckpointPorts,
): Promise<boolean> {
  const { log } = context;
  const error = await ports.appendFile(attempt, `${new Date().toISOString()}\n`).then(
    () => undefined,
    (problem: unknown) => problem as Error,
  );
  if (error === undefined) return true;
  const fields = { generation: generation.generation, file: attempt, err: error.message, unfinished };
  if (unfinished.length > 0) {
    log.error(fields, `cannot record the restore attempt: ${UNGUARDED}`);
    return false;
  }
  log.warn(fields, 'cannot record the restore attempt: restoring anyway, but if this restore never finishes the next start cannot tell');
  return true;
}

/** The command name of `pid` in this PID namespace, if it runs. */
function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Puts the files saved with the generation back where criu will look for them. A
 * damaged copy or a path that cannot be written fails this generation like criu would.
 */
async function putBack(context: RestoreContext, generation: Generation, files: readonly PreservedEntry[] | undefined): Promise<Extract<RestoreOutcome, { kind: 'failed' }> | undefined> {
  if (files === undefined || files.length === 0) return undefined;
  try {
    const { written, kept, skipped } = await putBackFiles(generation.path, files);
    const onVolumes = skipped.length === 0 ? {} : { left_on_volumes: skipped.slice(0, 20) };
    context.log.info({ generation: generation.generation, written, kept, ...onVolumes }, 'preserved files put back');
    return undefined;
  } catch (error) {
    return { kind: 'failed', generation: generation.generation, criuErrors: [(error as Error).message] };
  }
}

async function restoreGeneration(
  context: RestoreContext,
  generation: Generation,
  stdio: readonly { fd: number; inheritKey: string | null }[],
  attemptFile: string,
  ports: CheckpointPorts,
  hooks: RestoreHooks,
): Promise<Exclude<RestoreOutcome, { kind: 'none' }>> {
  const { config, log } = context;
  const pidfile = join(generation.path, RESTORE_PIDFILE);
  await rm(pidfile, { force: true });
  const inherit = inheritedFds(stdio);
  const args = (lazy: boolean): string[] =>
    restoreArgs({
      imagesDir: generation.path,
      pidfile,
      inherit,
      tcp: config.tcp,
      fileLocks: config.fileLocks,
      extUnixSockets: config.extUnixSockets,
      unprivileged: context.unprivileged,
      lazy,
      extra: config.criuRestoreOpts,
    });
  let daemon = config.lazy ? await startLazy(context, generation, ports) : null;
  log.info({ generation: generation.generation, inherit_fds: inherit.map(({ fd, key }) => `fd[${fd}]:${key}`), lazy: daemon !== null }, 'restore started');
  const logPath = join(generation.path, RESTORE_LOG);
  const criuOptions = { stdio: 'inherit', logPath, timeoutMs: config.criuTimeout } as const;
  const first = ports.runCriu(config.criu, args(daemon !== null), criuOptions);
  hooks.criuStarted?.();
  let run = await first;
  if (!run.ok && daemon !== null) {
    // criu killed the half-restored tree; the same images may still restore eagerly
    daemon.kill();
    await daemon.exited;
    daemon = null;
    log.warn({ generation: generation.generation, criu_errors: run.errors }, 'lazy restore failed; restoring the same generation eagerly');
    await rm(pidfile, { force: true });
    run = await ports.runCriu(config.criu, args(false), criuOptions);
  }
  if (run.timedOut) killHalfRestored(log, ports);
  if (!run.ok) return { kind: 'failed', generation: generation.generation, criuErrors: run.errors };
  const pid = Number((await readFile(pidfile, 'utf8')).trim());
  const stats = await readFile(join(generation.path, 'stats-restore'))
    .then((image) => parseStatsImage(image).restore)
    .catch(() => undefined);
  log.info(
    {
      generation: generation.generation,
      pid,
      duration_ms: run.durationMs,
      restore_ms: stats?.restore_time_us === undefined ? undefined : Math.round(stats.restore_time_us / 1000),
      forking_ms: stats?.forking_time_us === undefined ? undefined : Math.round(stats.forking_time_us / 1000),
      pages_restored: stats?.pages_restored,
      lazy: daemon !== null,
    },
    'restored',
  );
  if (daemon === null) return { kind: 'restored', pid, generation: generation.generation };
  const sizes = await imageSizes(generation.path).catch((): Record<string, number> => ({}));
  const bytes = Object.entries(sizes).reduce((sum, [name, size]) => (name.startsWith('pages-') ? sum + size : sum), 0);
  const lazy = watchLazyServing(log, daemon, { pid, generation: generation.generation, bytes, attemptFile }, ports);
  return { kind: 'restored', pid, generation: generation.generation, lazy };
}

/**
 * STASIS_LAZY: the probe and the daemon start side by side (each is a criu start);
 * null, with a log line saying why, when the restore must be eager.
 */
async function startLazy(context: RestoreContext, generation: Generation, ports: CheckpointPorts): Promise<LazyDaemon | null> {
  const { config, log } = context;
  const [support, daemon] = await Promise.all([
    ports.probeLazy(config.criu, context.unprivileged),
    ports.startLazyDaemon(config.criu, generation.path, context.unprivileged),
  ]);
  if (support.ok && 'pid' in daemon) {
    log.info({ generation: generation.generation, daemon_pid: daemon.pid }, 'lazy-pages daemon started');
    return daemon;
  }
  if ('pid' in daemon) {
    daemon.kill();
    await daemon.exited;
  }
  const reason = support.ok ? 'the criu lazy-pages daemon did not start' : support.reason;
  const errors = !support.ok || 'pid' in daemon ? {} : { criu_errors: daemon.errors };
  log.warn({ generation: generation.generation, reason, ...errors }, 'lazy restore unavailable; restoring eagerly');
  return null;
}

/**
 * criu was killed in the middle of a restore: the processes it had made so far (the
 * restored root is stasis's child) must not run on beside the next attempt or a fresh
 * start. Only stasis's own helpers (libuv's children, e.g. a lazy-pages daemon) stay.
 */
function killHalfRestored(log: RestoreContext['log'], ports: CheckpointPorts): void {
  const helpers = new Set(libuvChildren());
  const restored = descendantsOf(process.pid, ports.processTable())
    .filter((entry) => !helpers.has(entry.pid) && !helpers.has(entry.ppid))
    .map((entry) => entry.pid);
  if (restored.length === 0) return;
  log.warn({ pids: restored.slice(0, 20) }, 'killing what the unfinished restore had started');
  const failures = signalEach(restored, 'SIGKILL', ports.kill);
  if (failures.length > 0) log.warn({ failures: failures.slice(0, 20) }, 'cannot kill some of what the unfinished restore had started');
}
