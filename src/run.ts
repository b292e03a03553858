import { constants } from 'node:os';
import type { Config } from './config.js';
import { EXIT } from './init/exit.js';
import { raisePidFloor } from './init/pidfloor.js';
import { Supervisor } from './init/supervisor.js';
import type { Logger } from './log.js';
import type { ObjectStore } from './store/open.js';

/** config -> supervisor -> (restore | fresh start) -> init loop -> exit. */
export async function run(config: Config, command: readonly string[], log: Logger): Promise<void> {
  const supervisor = new Supervisor(config, log);
  supervisor.start();
  if (config.dir === null) {
    supervisor.spawnApp(command);
    return;
  }
  // Loaded only with checkpoints on: a plain init starts faster without criu's modules.
  const [{ openCheckpointDir, settleCheckpoints, toResponse }, { probeCriu }, { DumpCoordinator }, { restoreNewest }, { startControlServer }, { needsUnprivileged }] =
    await Promise.all([
      import('./checkpoint/controller.js'),
      import('./criu/run.js'),
      import('./checkpoint/coordinator.js'),
      import('./checkpoint/restore.js'),
      import('./control.js'),
      import('./criu/caps.js'),
    ]);
  // Restore critical path: `criu --version` runs beside the restore, not before it; the
  // control socket is set up once criu restore runs.
  const probe = probeCriu(config.criu);
  const opened = await openCheckpointDir(config, log);
  const state = settleCheckpoints(config, command, log, opened, probe);
  const dumps = new DumpCoordinator(supervisor, state, log);
  const afterDump = config.afterDump;
  if (config.dumpSignal !== null) {
    supervisor.intercept(config.dumpSignal, () => void dumps.request({ mode: afterDump, reason: 'signal' }));
  }
  if (config.checkpointOnTerm) {
    const term = constants.signals.SIGTERM;
    supervisor.intercept(term, () => void dumps.dumpOnTerm(term));
  }
  let criuStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (criuStarted = resolve));
  const criuProblem = async (): Promise<string | undefined> => {
    const probed = await probe;
    return 'error' in probed ? probed.error : undefined;
  };
  const restore = async (dir: string, store: ObjectStore | undefined) => {
    // With a store: an empty STASIS_DIR is filled from it first.
    await store?.fetchForRestore(dir, command);
    return restoreNewest({ config, dir, log, unprivileged: needsUnprivileged(), argv: command }, undefined, { criuStarted, criuProblem });
  };
  const restoring = 'dir' in opened ? restore(opened.dir, opened.store) : Promise.resolve({ kind: 'none' } as const);
  // A download from the store can take long: the socket must answer preStop hooks meanwhile.
  if (!('store' in opened)) await Promise.race([started, restoring]);
  const control = await startControlServer(
    config.socket,
    async (request) => toResponse(await dumps.request({ mode: request.mode ?? afterDump, reason: 'control socket' })),
    log,
  );
  if (control) supervisor.onExit(() => control.close());
  const outcome = await restoring;
  const checkpoints = await state;
  if (outcome.kind === 'failed' && checkpoints.enabled) {
    await supervisor.finish(EXIT.restoreFailed);
    return;
  }
  if (outcome.kind === 'restored') {
    // Before adopt: an app that already died makes adopt end stasis at once, and the daemon must be stopped then.
    if (outcome.lazy !== undefined) dumps.followLazyRestore(outcome.lazy);
    supervisor.adopt({ pid: outcome.pid, kind: 'restored' });
  }
  if (supervisor.appPid === null) {
    raisePidFloor(config.minPid, log);
    supervisor.spawnApp(command);
  }
  if (checkpoints.enabled && config.interval !== null) dumps.startInterval(config.interval);
}
