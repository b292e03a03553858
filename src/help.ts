import type { OptionSpec } from './config.js';

/** The README's table of environment variables and flags, one row per option. */
export function envTable(options: readonly OptionSpec[]): string {
  const rows = options.map((option) => {
    const flag = option.kind === 'bool' ? `--${option.flag}` + ` / --no-${option.flag}` : `--${option.flag} <${option.valueName}>`;
    return `| \`${option.env}\` | \`${flag}\` | ${option.defaultText} | ${option.description.replaceAll('|', '\\|')} |`;
  });
  return ['| variable | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
