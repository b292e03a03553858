import { describe, expect, test } from 'vitest';
import { formatDuration, parseDuration } from '../../src/duration.js';

describe('parseDuration', () => {
  test.each([
    ['500ms', 500],
    ['0ms', 0],
    ['0', 0],
    ['5s', 5000],
    ['5', 5000],
    ['1.5s', 1500],
    ['0.5', 500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    [' 10s ', 10_000],
    ['1.0005s', 1001],
    ['0.4ms', 0],
  ])('%j is %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(['', ' ', 's', '-1', '-1s', '+1s', '1e3', '5 s', '5S', '5sec', '1d', '.5s', '5.s', '1h30m', 'Infinity', 'NaN', '0x10'])('%j is refused', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  test.each([
    [600_000, '10m'],
    [2000, '2s'],
    [90_000, '90s'],
    [1500, '1500ms'],
    [0, '0s'],
  ])('%i ms is %j, which parses back', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text)).toBe(ms);
  });
});
