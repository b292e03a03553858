import { describe, expect, test } from 'vitest';
import { formatAge, formatArgv, formatTable, formatTime, truncate, wrapText } from '../../src/commands/table.js';
import { formatBytes, formatMs, formatUs } from '../../src/format.js';

describe('formatTable', () => {
  test('pads every column to its widest cell, two spaces apart, no trailing blanks', () => {
    expect(formatTable(['A', 'LONG HEADER', 'C'], [['xyz', '1', ''], ['', '22', 'last']])).toBe(
      ['A    LONG HEADER  C', 'xyz  1', '     22           last'].join('\n'),
    );
  });

  test('short rows are filled with empty cells', () => {
    expect(formatTable(['A', 'B'], [['1']])).toBe('A  B\n1');
  });

  test('a newline inside a cell never breaks the table', () => {
    expect(formatTable(['A', 'B'], [['x\n  y', 'z']])).toBe('A    B\nx y  z');
  });

  test('cells wider than maxWidth wrap and make the row taller', () => {
    const table = formatTable(['K', 'TEXT', 'FIX'], [['a', 'one two three four', 'x']], { maxWidths: [undefined, 9] });
    expect(table.split('\n')).toEqual(['K  TEXT     FIX', 'a  one two  x', '   three', '   four']);
  });
});

describe('wrapText', () => {
  test('greedy at blanks; long words are cut', () => {
    expect(wrapText('aa bb cc', 5)).toEqual(['aa bb', 'cc']);
    expect(wrapText('abcdefghij', 4)).toEqual(['abcd', 'efgh', 'ij']);
    expect(wrapText('x abcdefgh', 4)).toEqual(['x', 'abcd', 'efgh']);
    expect(wrapText('', 4)).toEqual(['']);
    expect(wrapText('no limit at all', undefined)).toEqual(['no limit at all']);
  });
});

describe('units', () => {
  test.each([
    [0, '0 B'],
    [512, '512 B'],
    [1536, '1.5 KiB'],
    [12.3 * 1024 * 1024, '12.3 MiB'],
    [2 * 1024 ** 3, '2.0 GiB'],
  ])('formatBytes(%d) = %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  test('milliseconds and criu microseconds', () => {
    expect(formatMs(undefined)).toBe('-');
    expect(formatMs(0.44)).toBe('0.4ms');
    expect(formatMs(12.4)).toBe('12ms');
    expect(formatMs(1500)).toBe('1.50s');
    expect(formatUs(2150)).toBe('2.2ms');
    expect(formatUs(undefined)).toBe('-');
  });

  test('ages and times', () => {
    const now = new Date('2025-11-27T12:00:00Z');
    expect(formatAge('2025-11-27T11:59:18Z', now)).toBe('42s ago');
    expect(formatAge('2025-11-27T11:55:00Z', now)).toBe('5m ago');
    expect(formatAge('2025-11-27T09:00:00Z', now)).toBe('3h ago');
    expect(formatAge('2025-11-25T12:00:00Z', now)).toBe('2d ago');
    expect(formatAge('2025-11-27T12:00:05Z', now)).toBe('0s ago');
    expect(formatAge('garbage', now)).toBe('?');
    expect(formatTime('2025-11-27T08:00:01.123Z')).toBe('2025-11-27 08:00:01Z');
    expect(formatTime('garbage')).toBe('garbage');
  });

  test('argv quoted only where a shell needs it; truncation marked', () => {
    expect(formatArgv(['python3', '-m', 'http.server', '--bind=0.0.0.0'])).toBe('python3 -m http.server --bind=0.0.0.0');
    expect(formatArgv(['sh', '-c', "echo 'hi' there", ''])).toBe(`sh -c 'echo '\\''hi'\\'' there' ''`);
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('abc', 4)).toBe('abc');
  });
});
