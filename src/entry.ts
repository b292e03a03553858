import { ConfigError, checkCombinations, loadConfig } from './config.js';
import { EXIT } from './init/exit.js';
import { createLogger } from './log.js';
import { run } from './run.js';

/**
 * `stasis -- CMD...` without flags, the init's everyday form, runs without loading
 * commander (a few ms of every container start, bench/README.md); anything else
 * (flags, subcommands, --help) goes through the full command line of cli.ts, which
 * gives the same result for this form.
 */
export async function main(argv: readonly string[]): Promise<void> {
  if (argv[2] !== '--' || argv.length < 4) {
    await (await import('./cli.js')).main(argv);
    return;
  }
  try {
    const config = loadConfig(process.env);
    checkCombinations(config, process.env);
    await run(config, argv.slice(3), createLogger(config.logLevel, config.logFormat));
  } catch (error) {
    exitOnError(error);
  }
}

/** Ends stasis for an error that reached the top: 2 for a bad option, else 1 (internal). */
export function exitOnError(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`stasis: ${error.message}\n`);
    process.exit(EXIT.usage);
  }
  process.stderr.write(`stasis: internal error: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(EXIT.internal);
}
