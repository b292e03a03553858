import { describe, expect, test } from 'vitest';
import { EXIT, exitCodeFor, finalExitCode, rewriteSignal, spawnFailureCode } from '../../src/init/exit.js';

const none = new Map<number, number>();

describe('exitCodeFor', () => {
  test('every exit code 0-255 passes through', () => {
    for (let code = 0; code <= 255; code++) expect(exitCodeFor({ code, signal: null }, none)).toBe(code);
  });
  test('death by signal N is 128+N, for every signal 1-31', () => {
    for (let signal = 1; signal <= 31; signal++) expect(exitCodeFor({ code: null, signal }, none)).toBe(128 + signal);
  });
  test('the signal wins over a code', () => {
    expect(exitCodeFor({ code: 3, signal: 15 }, none)).toBe(143);
  });
  test('codes are taken modulo 256', () => {
    expect(exitCodeFor({ code: 256 + 7, signal: null }, none)).toBe(7);
  });
  test('remap applies to codes and to 128+N, and leaves others alone', () => {
    const remap = new Map([[143, 0], [1, 3], [0, 9]]);
    expect(exitCodeFor({ code: null, signal: 15 }, remap)).toBe(0);
    expect(exitCodeFor({ code: 1, signal: null }, remap)).toBe(3);
    expect(exitCodeFor({ code: 0, signal: null }, remap)).toBe(9);
    expect(exitCodeFor({ code: 2, signal: null }, remap)).toBe(2);
    expect(exitCodeFor({ code: null, signal: 2 }, remap)).toBe(130);
  });
  test('remap is applied once, not chained', () => {
    expect(exitCodeFor({ code: 1, signal: null }, new Map([[1, 2], [2, 3]]))).toBe(2);
  });
});

describe('spawnFailureCode', () => {
  test.each([
    ['ENOENT', 127],
    ['ENOTDIR', 127],
    ['EACCES', 126],
    ['EPERM', 126],
    ['ENOEXEC', 126],
    ['E2BIG', 126],
    [undefined, 126],
  ])('%s gives %i', (errno, code) => {
    expect(spawnFailureCode(errno)).toBe(code);
  });
});

describe('rewriteSignal', () => {
  const rewrite = new Map([[15, 3], [10, 0], [1, 1]]);
  test('a mapped signal becomes its target', () => expect(rewriteSignal(15, rewrite)).toBe(3));
  test('a signal mapped to 0 is dropped (null)', () => expect(rewriteSignal(10, rewrite)).toBeNull());
  test('an unmapped signal is unchanged', () => {
    expect(rewriteSignal(2, rewrite)).toBe(2);
    expect(rewriteSignal(3, rewrite)).toBe(3);
  });
  test('identity mapping', () => expect(rewriteSignal(1, rewrite)).toBe(1));
  test('no map: everything unchanged', () => {
    for (let signal = 1; signal <= 31; signal++) expect(rewriteSignal(signal, new Map())).toBe(signal);
  });
});

describe('EXIT', () => {
  test('stasis own codes stay out of 126/127 and 128+N', () => {
    expect(EXIT).toEqual({ usage: 2, restoreFailed: 3, internal: 1 });
  });
});

describe('finalExitCode', () => {
  test("0 when stasis ended the app on purpose, whatever killed it; else the app's own code", () => {
    const killed = { code: null, signal: 9 };
    expect(finalExitCode(killed, none, true)).toBe(0);
    expect(finalExitCode(killed, none, false)).toBe(137);
    expect(finalExitCode({ code: 3, signal: null }, new Map([[3, 4]]), false)).toBe(4);
  });
});
