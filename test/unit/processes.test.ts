import { describe, expect, test } from 'vitest';
import { spawn } from 'node:child_process';
import { descendantsOf, isAlive, parseStat, readProcTable, readProcTree, signalEach, type ProcEntry } from '../../src/init/processes.js';

describe('parseStat', () => {
  test('a normal line', () => {
    expect(parseStat('1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5\n')).toEqual({ pid: 1234, ppid: 1, state: 'S' });
  });
  test('a command name with spaces and parentheses', () => {
    expect(parseStat('77 (a) b) (c d) Z 5 77 77 0 -1 0')).toEqual({ pid: 77, ppid: 5, state: 'Z' });
    expect(parseStat('78 ()) R 0 0 0')).toEqual({ pid: 78, ppid: 0, state: 'R' });
  });
  test('an empty command name', () => {
    expect(parseStat('9 () D 3 9 9')).toEqual({ pid: 9, ppid: 3, state: 'D' });
  });
  test.each(['', 'garbage', '12 (x', '12 (x)', '12 (x) S', 'x (y) S 1', '12 (x) S y'])('%j is undefined', (text) => {
    expect(parseStat(text)).toBeUndefined();
  });
  test("this process's own stat", async () => {
    const { readFileSync } = await import('node:fs');
    expect(parseStat(readFileSync('/proc/self/stat', 'utf8'))).toEqual({ pid: process.pid, ppid: process.ppid, state: 'R' });
  });
});

describe('descendantsOf', () => {
  const p = (pid: number, ppid: number, state = 'S'): ProcEntry => ({ pid, ppid, state });
  const table = [p(1, 0), p(10, 1), p(11, 10), p(12, 11, 'Z'), p(13, 10), p(20, 1), p(30, 99), p(31, 30)];
  const pids = (entries: ProcEntry[]): number[] => entries.map((entry) => entry.pid).sort((a, b) => a - b);

  test('children, grandchildren and deeper, zombies included', () => {
    expect(pids(descendantsOf(10, table))).toEqual([11, 12, 13]);
    expect(pids(descendantsOf(1, table))).toEqual([10, 11, 12, 13, 20]);
  });
  test('not the root itself, not unrelated trees', () => {
    expect(pids(descendantsOf(30, table))).toEqual([31]);
    expect(pids(descendantsOf(20, table))).toEqual([]);
    expect(pids(descendantsOf(404, table))).toEqual([]);
  });
  test('breadth first: parents before their children', () => {
    expect(descendantsOf(1, table).map((e) => e.pid)).toEqual([10, 20, 11, 13, 12]);
  });
  test('a root that appears as its own descendant (PID reuse seen mid-scan) does not loop', () => {
    expect(pids(descendantsOf(5, [p(5, 6), p(6, 5), p(7, 6)]))).toEqual([6, 7]);
  });
  test('the real table: this process is below its parent', () => {
    const real = readProcTable();
    expect(real.find((entry) => entry.pid === process.pid)).toMatchObject({ ppid: process.ppid });
    expect(descendantsOf(process.ppid, real).map((entry) => entry.pid)).toContain(process.pid);
  });
});

describe('isAlive', () => {
  test.each([['R', true], ['S', true], ['D', true], ['T', true], ['t', true], ['I', true], ['Z', false], ['X', false]])('state %s: %s', (state, alive) => {
    expect(isAlive({ pid: 1, ppid: 0, state })).toBe(alive);
  });
});

describe('signalEach', () => {
  test('signals every pid; one gone already (ESRCH) is no failure, others are returned', () => {
    const sent: number[] = [];
    const kill = (pid: number): void => {
      if (pid === 2) throw Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' });
      if (pid === 3) throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
      sent.push(pid);
    };
    expect(signalEach([1, 2, 3, 4], 'SIGTERM', kill)).toEqual([{ pid: 3, error: 'kill EPERM' }]);
    expect(sent).toEqual([1, 4]);
  });
});

describe('readProcTree', () => {
  test('holds the same descendants as a scan of all of /proc', async () => {
    // a child with a grandchild; both sleep until killed
    const child = spawn('sh', ['-c', 'sleep 60 & echo started; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise((resolve) => child.stdout.once('data', resolve));
      const pids = (table: ProcEntry[]): number[] => descendantsOf(process.pid, table).map((entry) => entry.pid).sort();
      const tree = readProcTree(process.pid);
      expect(tree.map((entry) => entry.pid)).toContain(process.pid);
      expect(pids(tree)).toEqual(pids(readProcTable()));
      expect(pids(tree)).toContain(child.pid);
      expect(descendantsOf(child.pid as number, tree)).toHaveLength(1);
    } finally {
      const grandchildren = descendantsOf(child.pid as number, readProcTable());
      child.kill('SIGKILL');
      for (const entry of grandchildren) process.kill(entry.pid, 'SIGKILL');
    }
  });
});
