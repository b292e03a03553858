import { writeSync } from 'node:fs';
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/** One line per event, written synchronously so nothing is lost when PID 1 exits. */
class Stderr implements DestinationStream {
  constructor(private readonly pretty: boolean) {}
  write(line: string): void {
    try {
      writeSync(2, this.pretty ? prettyLine(line) : line);
    } catch {
      // stderr gone (a closed pipe): PID 1 must keep running its app, log or not
    }
  }
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** `12:00:01.123 INFO  restored generation=7 pid=10002` from a pino JSON line. */
export function prettyLine(line: string): string {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, name: _name, ...rest } = event;
  const clock = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const fields = Object.entries(rest)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  const levelName = (LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5);
  return `${clock} stasis ${levelName} ${String(msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

export function createLogger(level: LogLevel, format: 'json' | 'pretty' | 'auto'): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  return pino(
    {
      name: 'stasis',
      level,
      base: { name: 'stasis' },
      timestamp: pino.stdTimeFunctions.epochTime,
    },
    new Stderr(pretty),
  );
}
