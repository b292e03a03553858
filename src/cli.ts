import { Command, Option, CommanderError } from 'commander';
import { ConfigError, OPTIONS, camel, loadConfig, type Flags } from './config.js';
import { EXIT } from './init/exit.js';
import { createLogger } from './log.js';
import { run } from './run.js';
import { VERSION } from './version.js';

const EPILOG = `
Every option is also an environment variable (shown in brackets); a flag wins over
its variable. Durations: 500ms, 5s, 2m, 1h (a bare number is seconds).

Exit codes:
  N        the app's exit code (0-255), remapped by STASIS_REMAP_EXIT
  128+N    the app was killed by signal N
  0        the app was dumped in exit mode (STASIS_AFTER_DUMP=exit)
  1        internal error of stasis
  2        bad option, bad environment variable, or no command: nothing was started
  3        restore failed and STASIS_ON_RESTORE_FAILURE=exit
  126      the command was found but could not be executed
  127      the command was not found

Examples:
  stasis -- python3 server.py
  STASIS_DIR=/checkpoints stasis -- java -jar app.jar     # dump with: kill -USR2 1
`;

export function buildProgram(): Command {
  const program = new Command('stasis')
    .description('Container init (PID 1) that checkpoints its app with CRIU and restores it on the next start.')
    .usage('[options] -- CMD [ARGS...]')
    .version(VERSION, '-V, --version')
    .argument('[command...]', 'the app to run, after --')
    .passThroughOptions()
    .showHelpAfterError()
    .addHelpText('after', EPILOG);
  for (const option of OPTIONS) {
    const help = `${option.description} [${option.env}, default ${option.defaultText}]`;
    if (option.kind === 'bool') {
      program.addOption(new Option(`--${option.flag}`, help));
      program.addOption(new Option(`--no-${option.flag}`, `turn off --${option.flag}`).hideHelp());
    } else {
      program.addOption(new Option(`--${option.flag} <${option.valueName}>`, help));
    }
  }
  program.action(async (command: string[], flags: Flags) => {
    const config = loadConfig(process.env, pickFlags(flags));
    if (command.length === 0) throw new ConfigError('CMD', '', 'a command to run after --');
    const log = createLogger(config.logLevel, config.logFormat);
    await run(config, command, log);
  });
  return program;
}

/** Commander's parsed flags, keyed like the OPTIONS table (camelCase of the flag). */
function pickFlags(flags: Flags): Flags {
  const picked: Record<string, string | boolean | undefined> = {};
  for (const option of OPTIONS) picked[camel(option.flag)] = flags[camel(option.flag)];
  return picked;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'node' });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`stasis: ${error.message}\n`);
      process.exit(EXIT.usage);
    }
    if (error instanceof CommanderError) {
      process.exit(error.exitCode === 0 ? 0 : EXIT.usage);
    }
    process.stderr.write(`stasis: internal error: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(EXIT.internal);
  }
}
