import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { dumpArgs, inheritedFds, restoreArgs } from '../../src/criu/args.js';
import { hasCapability, idsFromStatus, limitsNeedSysResource, needsUnprivileged } from '../../src/criu/caps.js';
import { criuErrors, parseCriuVersion } from '../../src/criu/log.js';
import { parseStatsImage } from '../../src/criu/stats.js';

const dumpBase = { pid: 10000, imagesDir: '/ck/.incoming-x', leave: 'stop', tcp: 'off', fileLocks: false, extUnixSockets: false, unprivileged: false, ghostLimit: 64 << 20, extra: [] } as const;
const restoreBase = { imagesDir: '/ck/gen-000001', pidfile: '/ck/gen-000001/restore.pid', inherit: [], tcp: 'off', fileLocks: false, extUnixSockets: false, unprivileged: false, lazy: false, extra: [] } as const;

describe('dumpArgs', () => {
  test('exit mode leaves the tree stopped, continue mode running; logs go to dump.log in the images dir', () => {
    expect(dumpArgs(dumpBase)).toEqual(['dump', '--tree', '10000', '--images-dir', '/ck/.incoming-x', '--log-file', 'dump.log', '-v4', '--leave-stopped', '--ghost-limit', '67108864']);
    expect(dumpArgs({ ...dumpBase, leave: 'continue' })).toContain('--leave-running');
  });

  test('tcp, file locks, external unix sockets, unprivileged mode and extra options', () => {
    const args = dumpArgs({ ...dumpBase, tcp: 'close', fileLocks: true, extUnixSockets: true, unprivileged: true, extra: ['--ghost-limit', '10M'] });
    expect(args.slice(9)).toEqual(['--tcp-established', '--ghost-limit', '67108864', '--file-locks', '--ext-unix-sk', '--unprivileged', '--ghost-limit', '10M']);
  });

  test('STASIS_GHOST_LIMIT is criu --ghost-limit in bytes; extra options come later, so criu takes theirs', () => {
    const args = dumpArgs({ ...dumpBase, ghostLimit: 1536 });
    expect(args.slice(args.indexOf('--ghost-limit'), args.indexOf('--ghost-limit') + 2)).toEqual(['--ghost-limit', '1536']);
  });
});

describe('restoreArgs', () => {
  test('detached, as a sibling of criu, with a pidfile and one --inherit-fd per stdio key', () => {
    const inherit = inheritedFds([
      { fd: 0, inheritKey: null },
      { fd: 1, inheritKey: 'pipe:[15865]' },
      { fd: 2, inheritKey: 'pipe:[15866]' },
    ]);
    expect(restoreArgs({ ...restoreBase, inherit })).toEqual([
      'restore', '--images-dir', '/ck/gen-000001', '--log-file', 'restore.log', '-v4',
      '--restore-detached', '--restore-sibling', '--pidfile', '/ck/gen-000001/restore.pid',
      '--inherit-fd', 'fd[1]:pipe:[15865]', '--inherit-fd', 'fd[2]:pipe:[15866]',
    ]);
  });

  test('tcp modes map to --tcp-established and --tcp-close', () => {
    expect(restoreArgs({ ...restoreBase, tcp: 'established' })).toContain('--tcp-established');
    expect(restoreArgs({ ...restoreBase, tcp: 'close' })).toContain('--tcp-close');
    expect(restoreArgs({ ...restoreBase, tcp: 'off' }).some((arg) => arg.startsWith('--tcp'))).toBe(false);
  });

  test('stdout and stderr on one pipe give one --inherit-fd, the key kept exactly (with the colon)', () => {
    expect(inheritedFds([
      { fd: 1, inheritKey: 'pipe:[7]' },
      { fd: 2, inheritKey: 'pipe:[7]' },
    ])).toEqual([{ fd: 1, key: 'pipe:[7]' }]);
  });
});

describe('criu logs', () => {
  const log = [
    '(00.000012) Version: 4.1.1 (gitid 0)',
    "(00.000100) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    '(00.004000) Warn  (compel/arch/x86/src/lib/infect.c:418): Will restore 20 with interrupted system call',
    "(00.050000) Error (criu/files-reg.c:1790): Can't lookup mount=26 for fd=2 path=/tmp/err1",
    '(00.060000) Error (criu/cr-dump.c:2111): Dumping FAILED.',
  ].join('\n');

  test('error lines are kept, the harmless RLIMIT line and warnings are not', () => {
    expect(criuErrors(log)).toEqual([
      "Error (criu/files-reg.c:1790): Can't lookup mount=26 for fd=2 path=/tmp/err1",
      'Error (criu/cr-dump.c:2111): Dumping FAILED.',
    ]);
  });

  test('versions', () => {
    expect(parseCriuVersion('Version: 4.1.1\n')).toEqual([4, 1, 1]);
    expect(parseCriuVersion('Version: 3.17\nGitID: v3.17')).toEqual([3, 17, 0]);
    expect(parseCriuVersion('criu: command not found')).toBeUndefined();
  });
});

describe('stats images', () => {
  test('a real stats-dump image of criu 4.1.1 decodes to its dump times (microseconds) and page counts', () => {
    const stats = parseStatsImage(readFileSync(new URL('../fixtures/criu/stats-dump', import.meta.url)));
    expect(stats.dump).toEqual({
      freezing_time_us: 790, frozen_time_us: 15613, memdump_time_us: 1705, memwrite_time_us: 248,
      pages_scanned: 106, pages_skipped_parent: 0, pages_written: 62, pages_lazy: 0,
    });
    expect(stats.restore).toBeUndefined();
  });

  test('a truncated image is an error, not garbage', () => {
    expect(() => parseStatsImage(new Uint8Array([1, 2, 3]))).toThrow(/too short/);
  });
});

describe('capabilities', () => {
  test('CapEff masks: full root, and a container without CAP_SYS_ADMIN', () => {
    expect(hasCapability('000001ffffffffff', 21)).toBe(true);
    expect(needsUnprivileged('000001ffffffffff')).toBe(false);
    // docker defaults + SYS_PTRACE + CHECKPOINT_RESTORE
    const container = (0xa80425fbn | (1n << 19n) | (1n << 40n)).toString(16);
    expect(hasCapability(container, 40)).toBe(true);
    expect(needsUnprivileged(container)).toBe(true);
  });

  test('ids from /proc/PID/status: real, effective and saved uid and gid', () => {
    const status = 'Name:\tpostgres\nUid:\t999\t999\t999\t999\nGid:\t998\t998\t998\t998\n';
    expect(idsFromStatus(status)).toEqual({ uids: [999, 999, 999], gids: [998, 998, 998] });
    expect(idsFromStatus('Name:\tx\n')).toBeUndefined();
  });

  test("reading another process's limits needs CAP_SYS_RESOURCE unless its real, effective and saved ids are the caller's", () => {
    const root = { uids: [0, 0, 0], gids: [0, 0, 0] };
    expect(limitsNeedSysResource(root, root)).toBe(false);
    expect(limitsNeedSysResource(root, { uids: [65534, 65534, 65534], gids: [65534, 65534, 65534] })).toBe(true);
    // a setuid program (effective uid differs) or a process of another group counts too
    expect(limitsNeedSysResource(root, { uids: [0, 1000, 0], gids: [0, 0, 0] })).toBe(true);
    expect(limitsNeedSysResource(root, { uids: [0, 0, 0], gids: [0, 5, 0] })).toBe(true);
  });
});
