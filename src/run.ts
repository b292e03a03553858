import type { Config } from './config.js';
import type { Logger } from './log.js';
import { Supervisor } from './init/supervisor.js';

/** config -> supervisor -> (fresh start | restore) -> init loop -> exit. */
export async function run(config: Config, command: readonly string[], log: Logger): Promise<void> {
  const supervisor = new Supervisor(config, log);
  supervisor.start();
  supervisor.spawnApp(command);
}
