import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { LAST_RESTORE_FILE, parseLastRestore, readLastRestore, recordRestore, restoreRecord } from '../../src/checkpoint/history.js';

const at = new Date('2025-11-27T08:00:00.000Z');
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-history-'));
  dirs.push(dir);
  return dir;
}

describe('restoreRecord', () => {
  test('restored: generation, pid and duration', () => {
    expect(restoreRecord({ kind: 'restored', generation: 3, pid: 10001 }, 240.6, at)).toEqual({
      format: 1,
      at: '2025-11-27T08:00:00.000Z',
      outcome: 'restored',
      generation: 3,
      pid: 10001,
      lazy: false,
      duration_ms: 241,
      errors: [],
    });
  });

  test('a lazy restore is recorded as lazy', () => {
    expect(restoreRecord({ kind: 'restored', generation: 3, pid: 10001, lazy: true }, 80, at).lazy).toBe(true);
  });

  test('failed keeps the errors; none has no generation', () => {
    expect(restoreRecord({ kind: 'failed', generation: 2, criuErrors: ['Error (criu/cr-restore.c:1): boom'] }, 5, at)).toMatchObject({
      outcome: 'failed',
      generation: 2,
      pid: null,
      errors: ['Error (criu/cr-restore.c:1): boom'],
    });
    expect(restoreRecord({ kind: 'none' }, 1, at)).toMatchObject({ outcome: 'none', generation: null, pid: null, errors: [] });
  });
});

describe('parseLastRestore', () => {
  test('round-trips a record and rejects anything else', () => {
    const record = restoreRecord({ kind: 'restored', generation: 1, pid: 10000 }, 10, at);
    expect(parseLastRestore(JSON.stringify(record))).toEqual(record);
    expect(parseLastRestore('not json')).toBeUndefined();
    expect(parseLastRestore('[]')).toBeUndefined();
    expect(parseLastRestore(JSON.stringify({ ...record, format: 2 }))).toBeUndefined();
    expect(parseLastRestore(JSON.stringify({ ...record, outcome: 'exploded' }))).toBeUndefined();
  });

  test('tolerates missing optional fields', () => {
    expect(parseLastRestore(JSON.stringify({ format: 1, at: at.toISOString(), outcome: 'none' }))).toEqual({
      format: 1,
      at: at.toISOString(),
      outcome: 'none',
      generation: null,
      pid: null,
      lazy: false,
      duration_ms: 0,
      errors: [],
    });
  });
});

describe('recordRestore / readLastRestore', () => {
  test('nothing recorded yet reads as null', async () => {
    expect(await readLastRestore(tempDir())).toBeNull();
  });

  test('writes an owner-only file atomically (no temp file left) and reads it back; the newest wins', async () => {
    const dir = tempDir();
    const first = restoreRecord({ kind: 'none' }, 1, at);
    const second = restoreRecord({ kind: 'restored', generation: 4, pid: 10002 }, 300, at);
    expect(await recordRestore(dir, first)).toBe(true);
    expect(await recordRestore(dir, second)).toBe(true);
    expect(readdirSync(dir)).toEqual([LAST_RESTORE_FILE]);
    expect(statSync(join(dir, LAST_RESTORE_FILE)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dir, LAST_RESTORE_FILE), 'utf8'))).toEqual(second);
    expect(await readLastRestore(dir)).toEqual(second);
  });

  test('a damaged file reads as null; a directory that cannot be written gives false, not an exception', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LAST_RESTORE_FILE), '{"format":1');
    expect(await readLastRestore(dir)).toBeNull();
    expect(await recordRestore(join(dir, 'missing'), restoreRecord({ kind: 'none' }, 1, at))).toBe(false);
  });
});
