import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { inheritedFds, restoreArgs, RESTORE_LOG, RESTORE_PIDFILE } from '../criu/args.js';
import { runCriu } from '../criu/run.js';
import { parseStatsImage } from '../criu/stats.js';
import { recordRestore, restoreRecord } from './history.js';
import { fingerprint } from './layout.js';
import { judge, listGenerations, quarantine, type Generation } from './store.js';
import type { CheckpointContext } from './context.js';

export type RestoreOutcome =
  | { readonly kind: 'restored'; readonly pid: number; readonly generation: number }
  | { readonly kind: 'none' }
  | { readonly kind: 'failed'; readonly generation: number; readonly criuErrors: readonly string[] };

/**
 * Restores the newest generation that belongs to this app. A generation that is
 * broken or fails to restore goes to quarantine; with STASIS_ON_RESTORE_FAILURE=fresh
 * the next older one is tried, else the failure is returned at once. The outcome is
 * recorded in $STASIS_DIR/last-restore.json for `stasis status`.
 */
export async function restoreNewest(context: CheckpointContext): Promise<RestoreOutcome> {
  const started = performance.now();
  const outcome = await tryGenerations(context);
  await recordRestore(context.dir, restoreRecord(outcome, performance.now() - started, new Date()));
  return outcome;
}

async function tryGenerations(context: CheckpointContext): Promise<RestoreOutcome> {
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
    const outcome = await restoreGeneration(context, generation, verdict.metadata.stdio);
    if (outcome.kind === 'restored') return outcome;
    const where = await quarantine(dir, generation, `criu restore failed:\n${outcome.criuErrors.join('\n')}`);
    log.error(
      { generation: generation.generation, criu_errors: outcome.criuErrors, quarantined: where },
      config.onRestoreFailure === 'exit' ? 'restore failed' : 'restore failed; trying an older generation or a fresh start',
    );
    if (config.onRestoreFailure === 'exit') return outcome;
  }
  return { kind: 'none' };
}

async function restoreGeneration(
  context: CheckpointContext,
  generation: Generation,
  stdio: readonly { fd: number; inheritKey: string | null }[],
): Promise<Exclude<RestoreOutcome, { kind: 'none' }>> {
  const { config, log } = context;
  const pidfile = join(generation.path, RESTORE_PIDFILE);
  await rm(pidfile, { force: true });
  const inherit = inheritedFds(stdio);
  const args = restoreArgs({
    imagesDir: generation.path,
    pidfile,
    inherit,
    tcp: config.tcp,
    fileLocks: config.fileLocks,
    extUnixSockets: config.extUnixSockets,
    unprivileged: context.unprivileged,
    extra: config.criuRestoreOpts,
  });
  log.info({ generation: generation.generation, inherit_fds: inherit.map(({ fd, key }) => `fd[${fd}]:${key}`) }, 'restore started');
  const run = await runCriu(config.criu, args, { stdio: 'inherit', logPath: join(generation.path, RESTORE_LOG) });
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
    },
    'restored',
  );
  return { kind: 'restored', pid, generation: generation.generation };
}
