import { constants } from 'node:os';

const byName = new Map<string, number>();
const byNumber = new Map<number, string>();
for (const [name, number] of Object.entries(constants.signals)) {
  byName.set(name, number);
  if (!byNumber.has(number)) byNumber.set(number, name);
}

/** Signals an init cannot or must not forward: uncatchable, or raised by a fault of its own. */
const NOT_FORWARDED = new Set(['SIGKILL', 'SIGSTOP', 'SIGCHLD', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL']);

/** Catchable signals 1-31 that stasis relays to the app (before the dump signal is taken out). */
export const FORWARDED_SIGNALS: readonly number[] = [...byNumber.entries()]
  .filter(([number, name]) => number >= 1 && number <= 31 && !NOT_FORWARDED.has(name))
  .map(([number]) => number)
  .sort((a, b) => a - b);

/** Parses `USR2`, `SIGUSR2`, `usr2` or `12`; undefined when it names no signal 1-31. */
export function parseSignal(text: string): number | undefined {
  const trimmed = text.trim().toUpperCase();
  if (/^\d+$/.test(trimmed)) {
    const number = Number(trimmed);
    return byNumber.has(number) && number <= 31 ? number : undefined;
  }
  const name = trimmed.startsWith('SIG') ? trimmed : `SIG${trimmed}`;
  const number = byName.get(name);
  return number !== undefined && number <= 31 ? number : undefined;
}

export function signalName(number: number): string {
  return byNumber.get(number) ?? `SIG${number}`;
}

export function isForwardable(number: number): boolean {
  return FORWARDED_SIGNALS.includes(number);
}
