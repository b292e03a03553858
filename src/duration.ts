/** The longest delay a Node timer holds (2^31-1 ms, about 596 h); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Pure: `ms` as it would be written in a duration option (`10m`, `2s`, `500ms`); the inverse of parseDuration. */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Parses `500ms`, `5s`, `2m`, `1h`, `1.5s` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) return undefined;
  const unit = UNITS[match[2] ?? 's'];
  if (unit === undefined) return undefined;
  return Math.round(Number(match[1]) * unit);
}
