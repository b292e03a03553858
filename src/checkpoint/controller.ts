import type { Config } from '../config.js';
import type { ControlResponse } from '../control.js';
import { needsUnprivileged } from '../criu/caps.js';
import { probeCriu } from '../criu/run.js';
import type { Logger } from '../log.js';
import type { CheckpointContext } from './context.js';
import type { DumpOutcome } from './dump.js';
import type { ObjectStore } from '../store/open.js';
import { openStore, StoreRefused } from './store.js';

export type CheckpointState =
  | { readonly enabled: true; readonly context: CheckpointContext }
  | { readonly enabled: false; readonly reason: string };

/** Decides whether checkpoints can work here: a usable STASIS_DIR and criu >= 4. */
export async function prepareCheckpoints(config: Config, argv: readonly string[], log: Logger): Promise<CheckpointState> {
  if (config.dir === null) return { enabled: false, reason: 'STASIS_DIR is not set' };
  let dir: string;
  try {
    dir = await openStore(config.dir);
  } catch (error) {
    const reason = error instanceof StoreRefused ? error.message : `cannot use ${config.dir}: ${(error as Error).message}`;
    log.error({ dir: config.dir, reason }, 'checkpoints are off: checkpoint directory refused');
    return { enabled: false, reason };
  }
  const criu = await probeCriu(config.criu);
  if ('error' in criu) {
    log.error({ criu: config.criu, reason: criu.error }, 'checkpoints are off: no usable criu');
    return { enabled: false, reason: criu.error };
  }
  const unprivileged = needsUnprivileged();
  let store: ObjectStore | undefined;
  if (config.store !== null) {
    try {
      // loaded only with a store configured: the AWS SDK is most of the bundle
      store = await (await import('../store/open.js')).openObjectStore(config, log);
    } catch (error) {
      const reason = (error as Error).message;
      log.error({ reason }, 'checkpoints are off: the object store cannot be used');
      return { enabled: false, reason };
    }
  }
  log.info({ dir, criu: criu.path, criu_version: criu.version, unprivileged }, 'checkpoints on');
  return { enabled: true, context: { config, dir, log, criu, unprivileged, argv, ...(store === undefined ? {} : { store }) } };
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
