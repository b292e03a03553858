import { describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli.js';

const names = (argv: readonly string[]): string[] => buildProgram(argv).commands.map((command) => command.name());

describe('subcommands', () => {
  test('status and doctor are subcommands when named first', () => {
    expect(names(['status'])).toEqual(expect.arrayContaining(['status', 'doctor']));
    expect(names(['doctor', '--json'])).toEqual(expect.arrayContaining(['status', 'doctor']));
  });

  test('after -- (or after any option) they are the app, never a subcommand', () => {
    // commander dispatches a subcommand on the first operand even when it follows `--`.
    expect(names(['--', 'status'])).toEqual([]);
    expect(names(['--', 'doctor'])).toEqual([]);
    expect(names(['--log-level', 'debug', '--', 'status'])).toEqual([]);
  });

  test('their usage errors exit like the root program (CommanderError, not process.exit)', () => {
    const program = buildProgram(['status']).exitOverride();
    for (const command of program.commands) command.configureOutput({ writeErr: () => {} });
    expect(() => program.parse(['status', '--bogus'], { from: 'user' })).toThrow(/unknown option '--bogus'/);
  });

  test('status and doctor document their flags', () => {
    const program = buildProgram(['status']);
    const help = (name: string): string => program.commands.find((command) => command.name() === name)?.helpInformation() ?? '';
    expect(help('status')).toMatch(/--dir <path>[\s\S]*STASIS_DIR[\s\S]*--json/);
    expect(help('doctor')).toMatch(/--dir <path>[\s\S]*--criu <path>[\s\S]*STASIS_CRIU[\s\S]*--json/);
  });
});
