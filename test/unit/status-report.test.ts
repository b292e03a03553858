import { describe, expect, test } from 'vitest';
import { restoreRecord } from '../../src/checkpoint/history.js';
import {
  describePreserved,
  describeLastRestore,
  formatRemote,
  formatStatus,
  keyError,
  parseQuarantineName,
  quarantinedDuring,
  reasonLine,
  summarizeGeneration,
  type StatusReport,
} from '../../src/commands/status-report.js';

const now = new Date('2025-11-27T12:00:00.000Z');

const metadata = {
  format: 1,
  generation: 2,
  created: '2025-11-27T11:55:00.000Z',
  argv: ['/app/server', '--port', '8080'],
  appVersion: '1.2',
  fingerprint: 'f',
  appPid: 10000,
  stdio: [],
  criuVersion: '4.1.1',
  stasisVersion: '0.1.0',
  mode: 'exit',
  dump: {
    duration_ms: 412,
    criu_ms: 380,
    bytes: 1_300_000,
    stats: { freezing_time_us: 2100, frozen_time_us: 350_000, memdump_time_us: 40_000, memwrite_time_us: 30_000, pages_written: 310, bogus: 'x' },
    preserved_files: 2,
    preserved_bytes: 33_000,
  },
};

describe('summarizeGeneration', () => {
  test('reads the metadata stasis writes', () => {
    const summary = summarizeGeneration({ name: 'gen-000002', bytes: 1_400_000, current: true, metadataText: JSON.stringify(metadata) });
    expect(summary).toEqual({
      name: 'gen-000002',
      generation: 2,
      current: true,
      bytes: 1_400_000,
      created: metadata.created,
      argv: metadata.argv,
      appVersion: '1.2',
      mode: 'exit',
      appPid: 10000,
      criuVersion: '4.1.1',
      stasisVersion: '0.1.0',
      dump: {
        duration_ms: 412,
        criu_ms: 380,
        bytes: 1_300_000,
        stats: { freezing_time_us: 2100, frozen_time_us: 350_000, memdump_time_us: 40_000, memwrite_time_us: 30_000, pages_written: 310 },
        preserved_files: 2,
        preserved_bytes: 33_000,
      },
      problem: null,
    });
  });

  test('missing, unparsable or partial metadata is reported, not thrown', () => {
    expect(summarizeGeneration({ name: 'gen-000001', bytes: 0, current: false, metadataText: undefined }).problem).toBe('stasis.json is missing');
    expect(summarizeGeneration({ name: 'gen-000001', bytes: 0, current: false, metadataText: '{' }).problem).toBe('stasis.json is not valid JSON');
    expect(summarizeGeneration({ name: 'gen-000001', bytes: 0, current: false, metadataText: '7' }).problem).toBe('stasis.json is not an object');
    const partial = summarizeGeneration({ name: 'gen-000001', bytes: 5, current: false, metadataText: '{"argv":["a"]}' });
    expect(partial).toMatchObject({ problem: null, argv: ['a'], created: null, dump: null });
  });
});

describe('quarantine', () => {
  test('names made by the store give the generation and the time', () => {
    expect(parseQuarantineName('gen-000007.2025-11-27T08-00-00-123Z')).toEqual({ generation: 7, quarantinedAt: '2025-11-27T08:00:00.123Z' });
    expect(parseQuarantineName('gen-000007')).toEqual({ generation: 7, quarantinedAt: null });
    expect(parseQuarantineName('something-else')).toEqual({ generation: null, quarantinedAt: null });
  });

  test("criu's key error is its first one, not the closing FAILED line", () => {
    expect(keyError(['Error (criu/image.c:549): Head magic', 'Error (criu/cr-restore.c:510): Can\'t open core', 'Error (criu/cr-restore.c:2320): Restoring FAILED.'])).toBe(
      'Error (criu/image.c:549): Head magic',
    );
    expect(keyError(['Error (criu/cr-dump.c:1681): Dump files (pid: 10000) failed with -1', 'Error (criu/cr-dump.c:2111): Dumping FAILED.', 'x'])).toBe('x');
    expect(keyError(['Error (criu/cr-dump.c:2111): Dumping FAILED.'])).toBe('Error (criu/cr-dump.c:2111): Dumping FAILED.');
    expect(keyError([])).toBeUndefined();
  });

  test('a multi-line reason becomes its first line and the key error', () => {
    expect(reasonLine('criu restore failed:\nError (a): first\nError (b): Restoring FAILED.\n')).toBe('criu restore failed: Error (a): first');
    expect(reasonLine('images missing: pstree.img\n')).toBe('images missing: pstree.img');
    expect(reasonLine(null)).toBe('(no reason recorded)');
  });
});

describe('describeLastRestore', () => {
  const at = new Date('2025-11-27T11:58:00.000Z');
  test.each([
    [null, 'none recorded'],
    [restoreRecord({ kind: 'restored', generation: 2, pid: 10000 }, 240, at), 'restored gen 2 at 2025-11-27 11:58:00Z (2m ago), pid 10000, took 240ms'],
    [restoreRecord({ kind: 'restored', generation: 2, pid: 10000, lazy: true }, 80, at), 'restored gen 2 lazily at 2025-11-27 11:58:00Z (2m ago), pid 10000, took 80ms'],
    [restoreRecord({ kind: 'failed', generation: 2, criuErrors: ['Error: a', 'Error: b'] }, 90, at), 'FAILED gen 2 at 2025-11-27 11:58:00Z (2m ago): Error: a (stasis exited 3)'],
    [restoreRecord({ kind: 'none' }, 3, at), 'no restorable checkpoint at 2025-11-27 11:58:00Z (2m ago): the app started fresh'],
  ])('%j', (record, text) => {
    expect(describeLastRestore(record, now)).toBe(text);
  });

  test('generations quarantined while the restore ran are named', () => {
    const last = restoreRecord({ kind: 'restored', generation: 1, pid: 10000 }, 600, new Date('2025-11-27T11:58:10.000Z'));
    const entry = (name: string, quarantinedAt: string) => ({ name, generation: 0, quarantinedAt, reason: null, restoreLog: true, bytes: 0 });
    const quarantine = [
      entry('gen-000003.2025-11-27T11-58-09-700Z', '2025-11-27T11:58:09.700Z'),
      entry('gen-000002.2025-11-27T11-58-09-900Z', '2025-11-27T11:58:09.900Z'),
      entry('gen-000009.2025-11-26T10-00-00-000Z', '2025-11-26T10:00:00.000Z'),
    ];
    const during = quarantinedDuring(last, quarantine);
    expect(during).toEqual(['gen-000003', 'gen-000002']);
    expect(describeLastRestore(last, now, during)).toMatch(/took 600ms \(after quarantining gen-000003, gen-000002\)$/);
  });
});

describe('describePreserved', () => {
  test('files and bytes; 0 when nothing was saved; - when the generation does not say', () => {
    const dump = { duration_ms: 1, criu_ms: 1, bytes: 1, stats: {} };
    expect(describePreserved({ ...dump, preserved_files: 3, preserved_bytes: 1536 })).toBe('3 (1.5 KiB)');
    expect(describePreserved({ ...dump, preserved_files: 0, preserved_bytes: 0 })).toBe('0');
    expect(describePreserved({ ...dump, preserved_files: null, preserved_bytes: null })).toBe('-');
    expect(describePreserved(null)).toBe('-');
  });
});

describe('formatStatus', () => {
  const empty: StatusReport = { dir: '/ck', exists: true, current: null, generations: [], quarantine: [], lastRestore: null, lastFailedDump: null, incoming: [] };

  test('a directory that does not exist yet', () => {
    expect(formatStatus({ ...empty, exists: false }, now)).toMatch(/^Checkpoint directory: \/ck\n\nIt does not exist yet/);
  });

  test('an empty directory', () => {
    expect(formatStatus(empty, now)).toBe(
      'Checkpoint directory: /ck\nCurrent: (none)\n\nGenerations: none\n\nQuarantine: empty\n\nLast restore: none recorded\n',
    );
  });

  test('generations, dump stats, quarantine, last restore and failed dump', () => {
    const current = summarizeGeneration({ name: 'gen-000002', bytes: 1_400_000, current: true, metadataText: JSON.stringify(metadata) });
    const older = summarizeGeneration({ name: 'gen-000001', bytes: 10, current: false, metadataText: undefined });
    const text = formatStatus(
      {
        ...empty,
        current: 'gen-000002',
        generations: [current, older],
        quarantine: [{ name: 'gen-000003.2025-11-27T11-59-00-000Z', generation: 3, quarantinedAt: '2025-11-27T11:59:00.000Z', reason: 'criu restore failed:\nError: x', restoreLog: true, bytes: 9 }],
        lastRestore: restoreRecord({ kind: 'restored', generation: 2, pid: 10000 }, 240, new Date('2025-11-27T11:59:00.000Z')),
        lastFailedDump: { at: '2025-11-27T11:30:00.000Z', errors: ['Error (criu/files-reg.c:1): ghost'] },
        incoming: ['.incoming-abc'],
      },
      now,
    );
    const lines = text.split('\n');
    expect(lines).toContain('Current: gen-000002');
    expect(lines.find((line) => line.includes('gen-000002') && line.includes('/app/server'))).toMatch(
      /^ {2}\* {2}gen-000002 {2}2025-11-27 11:55:00Z \(5m ago\) {2}1\.3 MiB {2}exit {2}\/app\/server --port 8080$/,
    );
    expect(lines.find((line) => line.includes('gen-000001') && line.includes('stasis.json'))).toMatch(/stasis\.json is missing$/);
    expect(lines).toContain('  GENERATION  TOTAL  CRIU   FREEZING  FROZEN  MEMDUMP  MEMWRITE  PAGES WRITTEN  PRESERVED FILES');
    expect(lines).toContain('  gen-000002  412ms  380ms  2.1ms     350ms   40ms     30ms      310            2 (32.2 KiB)');
    expect(lines).toContain('  gen-000001  -      -      -         -       -        -         -              -');
    expect(text).toMatch(/gen-000003\.2025-11-27T11-59-00-000Z {2}1m ago {7}criu restore failed: Error: x/);
    expect(text).toContain('Last restore: restored gen 2 at 2025-11-27 11:59:00Z (1m ago), pid 10000, took 240ms');
    expect(text).toContain('Last failed dump: 2025-11-27 11:30:00Z (30m ago): Error (criu/files-reg.c:1): ghost');
    expect(text).toContain('Dump in progress (or interrupted): .incoming-abc');
  });
});

describe('formatRemote', () => {
  const now = new Date('2026-12-05T12:00:00Z');
  const store = {
    url: 's3://bk/pods/web-0',
    endpoint: 'http://rgw:7480',
    template: false,
    current: 'gen-000002-0a0b0c0d',
    generations: [
      { id: 'gen-000003-0a0b0c0d', generation: 3, committed: false, objects: 2, storedBytes: 2048, modified: '2026-12-05T11:59:00Z' },
      { id: 'gen-000002-0a0b0c0d', generation: 2, committed: true, objects: 9, storedBytes: 5 * 2 ** 20, modified: '2026-12-05T11:00:00Z' },
    ],
    quarantine: [{ id: 'gen-000001-0a0b0c0d', reason: 'pages-1.img is damaged: 4 bytes\nmore' }],
    error: null,
  };

  test('generations with the current one starred, uploads without manifest named as such, quarantine with reasons', () => {
    const text = formatRemote(store, now).join('\n');
    expect(text).toContain('Object store: s3://bk/pods/web-0 at http://rgw:7480');
    expect(text).toContain('Current: gen-000002-0a0b0c0d');
    expect(text).toMatch(/\* +gen-000002-0a0b0c0d .* 5\.0 MiB +9 +committed/);
    expect(text).toMatch(/gen-000003-0a0b0c0d .*no manifest: uploading, or a failed upload/);
    expect(text).toMatch(/gen-000001-0a0b0c0d +pages-1\.img is damaged: 4 bytes/);
  });

  test('a store that cannot be read says why; a template is marked read-only', () => {
    expect(formatRemote({ ...store, error: 'bucket bk does not exist at http://rgw:7480' }, now)).toEqual([
      'Object store: s3://bk/pods/web-0 at http://rgw:7480',
      '  cannot be read: bucket bk does not exist at http://rgw:7480',
    ]);
    expect(formatRemote({ ...store, template: true }, now)[0]).toBe('Template store (read-only): s3://bk/pods/web-0 at http://rgw:7480');
  });
});
