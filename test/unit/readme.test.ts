import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli.js';
import { OPTIONS } from '../../src/config.js';
import { envTable } from '../../src/help.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('documentation stays true', () => {
  test("the README's env var table is the one generated from the option table", () => {
    const match = /<!-- env-table:[^\n]*-->\n([\s\S]*?)\n<!-- \/env-table -->/.exec(readme);
    expect(match?.[1]).toBe(envTable(OPTIONS));
  });

  test('--help names every flag and its variable', () => {
    const help = buildProgram().helpInformation();
    for (const option of OPTIONS) {
      expect(help).toContain(`--${option.flag}`);
      expect(help).toContain(option.env);
    }
  });

  test('--help lists the subcommands', () => {
    const help = buildProgram().helpInformation();
    for (const name of ['checkpoint']) expect(help).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
  });
});
