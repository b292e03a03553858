import { constants } from 'node:os';
import { describe, expect, test } from 'vitest';
import { FORWARDED_SIGNALS, isForwardable, parseSignal, signalName } from '../../src/signals.js';

const S = constants.signals;

describe('parseSignal', () => {
  test.each([
    ['TERM', S.SIGTERM],
    ['SIGTERM', S.SIGTERM],
    ['sigterm', S.SIGTERM],
    ['term', S.SIGTERM],
    [' USR2 ', S.SIGUSR2],
    ['12', 12],
    ['1', S.SIGHUP],
    ['01', S.SIGHUP],
    ['31', 31],
    ['KILL', S.SIGKILL],
    ['IOT', 6],
    ['POLL', 29],
  ])('%j is %i', (text, number) => {
    expect(parseSignal(text)).toBe(number);
  });

  test.each(['', ' ', '0', '32', '64', '-1', '+1', '1.0', 'SIG', 'SIGSIGTERM', 'FOO', 'RTMIN', 'SIGRTMIN+1', 'TERM QUIT'])('%j is no signal', (text) => {
    expect(parseSignal(text)).toBeUndefined();
  });
});

describe('signalName', () => {
  test('the canonical name, the first one for an alias', () => {
    expect(signalName(15)).toBe('SIGTERM');
    expect(signalName(6)).toBe('SIGABRT');
    expect(signalName(29)).toBe('SIGIO');
  });
  test('an unknown number still gives a name', () => {
    expect(signalName(40)).toBe('SIG40');
  });
  test('round-trips through parseSignal for 1-31', () => {
    for (let n = 1; n <= 31; n++) expect(parseSignal(signalName(n))).toBe(n);
  });
});

describe('FORWARDED_SIGNALS / isForwardable', () => {
  const expected = [1, 2, 3, 5, 6, 10, 12, 13, 14, 15, 16, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];
  test('every catchable signal 1-31 except the uncatchable, SIGCHLD and fault signals, sorted', () => {
    expect(FORWARDED_SIGNALS).toEqual(expected);
  });
  test.each(['KILL', 'STOP', 'CHLD', 'SEGV', 'BUS', 'FPE', 'ILL'])('%s is not forwarded', (name) => {
    expect(isForwardable(parseSignal(name) as number)).toBe(false);
  });
  test.each(['HUP', 'INT', 'QUIT', 'USR1', 'USR2', 'WINCH', 'CONT', 'ALRM', 'TERM', 'PIPE', 'TSTP', 'PWR'])('%s is forwarded', (name) => {
    expect(isForwardable(parseSignal(name) as number)).toBe(true);
  });
  test('0 and numbers above 31 are not', () => {
    expect(isForwardable(0)).toBe(false);
    expect(isForwardable(32)).toBe(false);
  });
});
