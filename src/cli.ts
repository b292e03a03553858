import { Command, Option, CommanderError } from 'commander';
import { ConfigError, OPTIONS, camel, checkCombinations, loadConfig, type Flags } from './config.js';
import { EXIT } from './init/exit.js';
import { exitOnError } from './entry.js';
import { createLogger } from './log.js';
import { run } from './run.js';
import type { CheckpointOptions } from './commands/checkpoint.js';
import type { DoctorFlags } from './commands/doctor.js';
import type { StatusFlags } from './commands/status.js';
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

/**
 * The program. Subcommands are attached only when the first argument names one,
 * so that `stasis -- status` or `stasis checkpoint-tool` run an app, never a subcommand.
 */
export function buildProgram(argv: readonly string[] = []): Command {
  const program = new Command('stasis')
    .description('Container init (PID 1) that checkpoints its app with CRIU and restores it on the next start.')
    .usage('[options] -- CMD [ARGS...]\n       stasis checkpoint|status|doctor [options]')
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
    checkCombinations(config, process.env, pickFlags(flags));
    if (command.length === 0) throw new ConfigError('CMD', '', 'a command to run after --');
    const log = createLogger(config.logLevel, config.logFormat);
    await run(config, command, log);
  });
  const first = argv[0];
  const commands = subcommands();
  if (first === undefined || first === '-h' || first === '--help' || commands.some((c) => c.name() === first)) {
    // exitOverride: a subcommand's usage error exits 2 like the root's (addCommand copies no settings).
    for (const command of commands) program.addCommand(command.exitOverride().showHelpAfterError());
  }
  return program;
}

/** `stasis checkpoint`, `stasis status`, `stasis doctor`. */
function subcommands(): Command[] {
  const checkpoint = new Command('checkpoint')
    .description('ask the running stasis (PID 1) for a dump now, e.g. from a preStop hook; exits 0 once committed, 1 if it failed')
    .option('--exit', 'dump, then end the app (stasis exits 0)')
    .option('--continue', 'dump and keep the app running')
    .option('--timeout <duration>', 'how long to wait for the dump', '10m')
    .option('--socket <path>', 'control socket [STASIS_SOCKET, default /dev/shm/stasis.sock]')
    .action(async (options: CheckpointOptions) => {
      process.exitCode = await (await import('./commands/checkpoint.js')).checkpointCommand(options);
    });
  const status = new Command('status')
    .description('show the checkpoint generations (time, size, command, dump stats), quarantine and the last restore')
    .option('--dir <path>', 'checkpoint directory [STASIS_DIR]')
    .option('--json', 'one JSON document instead of tables')
    .action(async (options: StatusFlags) => {
      process.exitCode = await (await import('./commands/status.js')).statusCommand(options);
    });
  const doctor = new Command('doctor')
    .description('check that checkpoints can work here (criu, capabilities, the users of the running app, STASIS_DIR, ...); exits 1 when something required is missing')
    .option('--dir <path>', 'checkpoint directory [STASIS_DIR]')
    .option('--criu <path>', 'criu binary [STASIS_CRIU, default criu]')
    .option('--json', 'one JSON document instead of the table')
    .action(async (options: DoctorFlags) => {
      process.exitCode = await (await import('./commands/doctor.js')).doctorCommand(options);
    });
  return [checkpoint, status, doctor];
}

/** Commander's parsed flags, keyed like the OPTIONS table (camelCase of the flag). */
function pickFlags(flags: Flags): Flags {
  const picked: Record<string, string | boolean | undefined> = {};
  for (const option of OPTIONS) picked[camel(option.flag)] = flags[camel(option.flag)];
  return picked;
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram(argv.slice(2)).exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'node' });
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : EXIT.usage);
    exitOnError(error);
  }
}
