import type { Config } from '../config.js';
import type { ControlResponse } from '../control.js';
import { needsUnprivileged } from '../criu/caps.js';
import { probeCriu } from '../criu/run.js';
import type { Supervisor } from '../init/supervisor.js';
import type { Logger } from '../log.js';
import type { CheckpointContext } from './context.js';
import { dumpApp, type DumpOutcome, type DumpRequest } from './dump.js';
import { lazyServing, type LazyEnd } from './lazy.js';
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
  log.info({ dir, criu: criu.path, criu_version: criu.version, unprivileged }, 'checkpoints on');
  return { enabled: true, context: { config, dir, log, criu, unprivileged, argv } };
}

/** How long a dump request that arrives before the app runs waits for it (a restore of a big app takes seconds). */
const APP_WAIT_MS = 10 * 60_000;

/**
 * A request that arrives while the app is still being restored or started (the
 * dump signal is handled from stasis's first moment on) waits for the app instead
 * of being dropped: a `runc kill USR2` sent as soon as the restored app printed
 * something was lost that way. The supervisor never forgets its app, so null
 * means "not there yet".
 */
async function appToCome(supervisor: Supervisor, log: Logger, request: DumpRequest): Promise<number | null> {
  log.info({ reason: request.reason }, 'dump requested before the app runs: waiting for it');
  const deadline = Date.now() + APP_WAIT_MS;
  while (supervisor.appPid === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return supervisor.appPid;
}

/** Answer of a request that must be asked again (outside the supervisor's lock). */
const AGAIN = Symbol('again');

/** The committed exit-mode dump that ended the app: every later request is answered with it. */
const finalDumps = new WeakMap<Supervisor, DumpOutcome>();

/**
 * Serialises dump requests on the supervisor: a request while a dump runs joins it
 * instead of starting a second one; once an exit-mode dump has ended the app, later
 * requests get that dump's result. Never rejects: a fault becomes a failed outcome.
 */
export function requestDump(supervisor: Supervisor, state: CheckpointState, request: DumpRequest, log: Logger): Promise<DumpOutcome> {
  if (!state.enabled) {
    log.error({ reason: state.reason }, 'dump requested but checkpoints are off');
    return Promise.resolve({ ok: false, error: `checkpoints are off: ${state.reason}`, criuErrors: [] });
  }
  // A lazily restored app is dumped only once all its memory is in (nor is its generation pruned before).
  const serving = lazyServing(state.context);
  if (serving !== undefined) {
    log.info({ reason: request.reason }, 'dump waits until the lazy restore has copied every page in');
    return serving.then((end) => (end.kind === 'failed' ? lazyFailed(end, log) : requestDump(supervisor, state, request, log)));
  }
  const final = finalDumps.get(supervisor);
  if (final !== undefined) {
    log.info({ reason: request.reason }, 'dump requested after the app was dumped and ended: answered with that dump');
    return Promise.resolve(final);
  }
  return (
    supervisor.exclusive(async () => {
      const pid = supervisor.appPid ?? (await appToCome(supervisor, log, request));
      if (pid === null) return { ok: false, error: 'no app is running', criuErrors: [] } satisfies DumpOutcome;
      const earlier = finalDumps.get(supervisor);
      if (earlier !== undefined) return earlier;
      // the app this request waited for came from a lazy restore: wait for its pages without holding signals
      if (lazyServing(state.context) !== undefined) return AGAIN;
      const outcome = await dumpApp(state.context, pid, request);
      if (outcome.ok && request.mode === 'exit') {
        finalDumps.set(supervisor, outcome);
        supervisor.markEndedByDump();
      }
      return outcome;
    }) as Promise<DumpOutcome | typeof AGAIN>
  ).then((outcome) => (outcome === AGAIN ? requestDump(supervisor, state, request, log) : outcome)).catch((error: unknown): DumpOutcome => {
    const message = `dump failed: ${(error as Error).message}`;
    log.error({ err: (error as Error).stack ?? String(error) }, 'dump failed; the app keeps running');
    return { ok: false, error: message, criuErrors: [] };
  });
}

function lazyFailed(end: Extract<LazyEnd, { kind: 'failed' }>, log: Logger): DumpOutcome {
  const error = "not dumped: the lazy restore failed, the app's memory was incomplete and it was killed";
  log.error({ criu_errors: end.errors }, error);
  return { ok: false, error, criuErrors: end.errors };
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
  };
}

/**
 * SIGTERM with STASIS_CHECKPOINT_ON_TERM: waits for a dump in progress, then dumps
 * in exit mode; if that fails, SIGTERM goes to the app so the pod still stops.
 */
export async function dumpOnTerm(supervisor: Supervisor, state: CheckpointState, log: Logger, term: number): Promise<void> {
  await supervisor.whenIdle();
  const outcome = await requestDump(supervisor, state, { mode: 'exit', reason: 'SIGTERM' }, log);
  if (!outcome.ok) {
    log.warn({ error: outcome.error }, 'dump on SIGTERM failed; forwarding SIGTERM');
    supervisor.forward(term);
  }
}

/** STASIS_INTERVAL: a continue-mode dump every `ms`; a tick that finds a dump running is skipped. */
export function startInterval(supervisor: Supervisor, state: CheckpointState, ms: number, log: Logger): void {
  const timer = setInterval(() => {
    if (supervisor.isBusy || supervisor.appPid === null || (state.enabled && lazyServing(state.context) !== undefined)) {
      log.info('interval checkpoint skipped: a dump or a lazy restore is running, or no app yet');
      return;
    }
    void requestDump(supervisor, state, { mode: 'continue', reason: 'interval' }, log);
  }, ms);
  supervisor.onExit(async () => clearInterval(timer));
}
