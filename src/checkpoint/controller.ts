import type { Config } from '../config.js';
import type { ControlResponse } from '../control.js';
import { needsUnprivileged } from '../criu/caps.js';
import { probeCriu, type CriuInfo } from '../criu/run.js';
import type { Logger } from '../log.js';
import type { CheckpointContext } from './context.js';
import type { DumpOutcome } from './dump.js';
import type { ObjectStore } from '../store/open.js';
import { openStore, StoreRefused } from './store.js';

export type CheckpointState =
  | { readonly enabled: true; readonly context: CheckpointContext }
  | { readonly enabled: false; readonly reason: string };

export type OpenedDir = { readonly dir: string; readonly store?: ObjectStore } | { readonly reason: string };

/**
 * STASIS_DIR made ready (created, checked, leftovers of an unfinished dump removed) and
 * STASIS_STORE opened when set, or why checkpoints cannot be used.
 */
export async function openCheckpointDir(config: Config, log: Logger): Promise<OpenedDir> {
  if (config.dir === null) return { reason: 'STASIS_DIR is not set' };
  let dir: string;
  try {
    dir = await openStore(config.dir);
  } catch (error) {
    const reason = error instanceof StoreRefused ? error.message : `cannot use ${config.dir}: ${(error as Error).message}`;
    log.error({ dir: config.dir, reason }, 'checkpoints are off: checkpoint directory refused');
    return { reason };
  }
  if (config.store === null) return { dir };
  try {
    // loaded only with a store configured: the AWS SDK is most of the bundle
    return { dir, store: await (await import('../store/open.js')).openObjectStore(config, log) };
  } catch (error) {
    const reason = (error as Error).message;
    log.error({ reason }, 'checkpoints are off: the object store cannot be used');
    return { reason };
  }
}

/**
 * The checkpoint state once the directory is open and `criu --version` has answered.
 * The probe runs beside the restore (it is not on the restore's critical path): a
 * restore that fails while criu is unusable is no fault of the generation.
 */
export async function settleCheckpoints(
  config: Config,
  argv: readonly string[],
  log: Logger,
  opened: OpenedDir,
  probe: Promise<CriuInfo | { error: string }> | undefined,
): Promise<CheckpointState> {
  if ('reason' in opened) return { enabled: false, reason: opened.reason };
  const criu = await (probe ?? probeCriu(config.criu));
  if ('error' in criu) {
    log.error({ criu: config.criu, reason: criu.error }, 'checkpoints are off: no usable criu');
    return { enabled: false, reason: criu.error };
  }
  const unprivileged = needsUnprivileged();
  log.info({ dir: opened.dir, criu: criu.path, criu_version: criu.version, unprivileged }, 'checkpoints on');
  const store = opened.store;
  return { enabled: true, context: { config, dir: opened.dir, log, criu, unprivileged, argv, ...(store === undefined ? {} : { store }) } };
}

/** Pure: the control socket's answer for a dump outcome. */
export function toResponse(outcome: DumpOutcome): ControlResponse {
  if (!outcome.ok) return { ok: false, error: outcome.error, criu_errors: outcome.criuErrors };
  const frozen = outcome.stats?.frozen_time_us;
  return {
    ok: true,
    generation: outcome.generation,
    bytes: outcome.bytes,
    duration_ms: outcome.durationMs,
    ...(frozen === undefined ? {} : { frozen_ms: Math.round(frozen / 1000) }),
    mode: outcome.mode,
    ...(outcome.remote === undefined
      ? {}
      : { remote: { id: outcome.remote.id, key: outcome.remote.key, compressed_bytes: outcome.remote.storedBytes, upload_ms: outcome.remote.uploadMs } }),
  };
}
