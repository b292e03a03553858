import type { Config } from './config.js';
import { prepareCheckpoints, requestDump } from './checkpoint/controller.js';
import { restoreNewest } from './checkpoint/restore.js';
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
  const checkpoints = await prepareCheckpoints(config, command, log);
  supervisor.onDumpSignal = () => {
    void requestDump(supervisor, checkpoints, { mode: config.afterDump, reason: 'signal' }, log);
  };
  if (checkpoints.enabled) {
    const outcome = await restoreNewest(checkpoints.context);
    if (outcome.kind === 'restored') {
      supervisor.adopt({ pid: outcome.pid, kind: 'restored' });
      return;
    }
    if (outcome.kind === 'failed') {
      await supervisor.finish(EXIT.restoreFailed);
      return;
    }
  }
  raisePidFloor(config.minPid, log);
  supervisor.spawnApp(command);
}
