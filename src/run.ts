import { constants } from 'node:os';
import type { Config } from './config.js';
import { EXIT } from './init/exit.js';
import { raisePidFloor } from './init/pidfloor.js';
import { Supervisor } from './init/supervisor.js';
import type { Logger } from './log.js';

/** config -> supervisor -> (restore | fresh start) -> init loop -> exit. */
export async function run(config: Config, command: readonly string[], log: Logger): Promise<void> {
  const supervisor = new Supervisor(config, log);
  supervisor.start();
  if (config.dir === null) {
    supervisor.spawnApp(command);
    return;
  }
  // Loaded only with checkpoints on: a plain init starts faster without execa and criu's modules.
  const [{ prepareCheckpoints, toResponse }, { DumpCoordinator }, { restoreNewest }, { startControlServer }] = await Promise.all([
    import('./checkpoint/controller.js'),
    import('./checkpoint/coordinator.js'),
    import('./checkpoint/restore.js'),
    import('./control.js'),
  ]);
  const checkpoints = await prepareCheckpoints(config, command, log);
  const dumps = new DumpCoordinator(supervisor, checkpoints, log);
  const afterDump = config.afterDump;
  if (config.dumpSignal !== null) {
    supervisor.intercept(config.dumpSignal, () => void dumps.request({ mode: afterDump, reason: 'signal' }));
  }
  if (config.checkpointOnTerm) {
    const term = constants.signals.SIGTERM;
    supervisor.intercept(term, () => void dumps.dumpOnTerm(term));
  }
  const control = await startControlServer(
    config.socket,
    async (request) => toResponse(await dumps.request({ mode: request.mode ?? afterDump, reason: 'control socket' })),
    log,
  );
  if (control) supervisor.onExit(() => control.close());
  if (checkpoints.enabled) {
    await checkpoints.context.store?.fetchForRestore(checkpoints.context.dir, checkpoints.context.argv);
    const outcome = await restoreNewest(checkpoints.context);
    if (outcome.kind === 'failed') {
      await supervisor.finish(EXIT.restoreFailed);
      return;
    }
    if (outcome.kind === 'restored') {
      // Before adopt: an app that already died makes adopt end stasis at once, and the daemon must be stopped then.
      if (outcome.lazy !== undefined) dumps.followLazyRestore(outcome.lazy);
      supervisor.adopt({ pid: outcome.pid, kind: 'restored' });
    }
  }
  if (supervisor.appPid === null) {
    raisePidFloor(config.minPid, log);
    supervisor.spawnApp(command);
  }
  if (checkpoints.enabled && config.interval !== null) dumps.startInterval(config.interval);
}
