import { describe, expect, test } from 'vitest';
import {
  judgeAppUsers,
  doctorExitCode,
  formatDoctor,
  judgeCapabilities,
  judgeCriu,
  judgeCriuCheck,
  judgeCriuFault,
  judgeDir,
  judgeFreeSpace,
  judgeInit,
  judgeLazyPages,
  judgeNsLastPid,
  type Check,
  type DirFacts,
} from '../../src/commands/checks.js';

const hex = (...bits: number[]): string => bits.reduce((mask, bit) => mask | (1n << BigInt(bit)), 0n).toString(16);
const SYS_ADMIN = 21;
const SYS_PTRACE = 19;
const CHECKPOINT_RESTORE = 40;

describe('criu', () => {
  test('found and >= 4 is ok; missing or failing to probe is FAIL with how to install', () => {
    expect(judgeCriu('criu', { path: 'criu', version: '4.1.1' }, '/usr/sbin/criu')).toMatchObject({ status: 'ok', detail: 'criu 4.1.1 (/usr/sbin/criu)' });
    const missing = judgeCriu('/nonexistent', { error: 'cannot run criu' }, null);
    expect(missing).toMatchObject({ status: 'FAIL', detail: '/nonexistent not found or not executable' });
    expect(missing.fix).toMatch(/STASIS_CRIU/);
    expect(judgeCriu('criu', { error: 'x' }, null).detail).toBe('criu not found in PATH');
    expect(judgeCriu('criu', { error: 'criu is version 3.17.1; stasis needs criu 4 or newer' }, '/usr/sbin/criu')).toMatchObject({ status: 'FAIL' });
  });

  test('criu check: Looks good, Looks good but, failure, not run', () => {
    expect(judgeCriuCheck({ exitCode: 0, output: 'Looks good.\n' }, false)).toMatchObject({ name: 'criu check', status: 'ok' });
    expect(judgeCriuCheck({ exitCode: 0, output: 'Looks good.' }, true).name).toBe('criu check --unprivileged');
    expect(judgeCriuCheck({ exitCode: 0, output: 'Warn: x\nLooks good but some kernel features are missing which, ...' }, false).status).toBe('warn');
    const readOnlySysctl = judgeCriuCheck({ exitCode: 1, output: 'Error (criu/cr-check.c:160): sys/kernel/ns_last_pid sysctl is inaccessible: Read-only file system\n' }, true);
    expect(readOnlySysctl).toMatchObject({ status: 'warn', detail: expect.stringMatching(/read-only \/proc\/sys\/kernel\/ns_last_pid/) });
    const failed = judgeCriuCheck({ exitCode: 1, output: "Error (criu/cr-check.c:1): rlimit: Can't setup RLIMIT_NOFILE\nError (criu/cr-check.c:2): seccomp not supported\n" }, false);
    expect(failed).toMatchObject({ status: 'FAIL', detail: 'failed (exit 1): Error (criu/cr-check.c:2): seccomp not supported' });
    expect(judgeCriuCheck(null, false).status).toBe('skip');
  });

  test('lazy pages are optional', () => {
    expect(judgeLazyPages({ exitCode: 0, output: 'uffd-noncoop is supported' }).status).toBe('ok');
    expect(judgeLazyPages({ exitCode: 1, output: 'UFFD is not supported' }).status).toBe('warn');
    expect(judgeLazyPages(null).status).toBe('skip');
  });
});

describe('capabilities', () => {
  test('CAP_SYS_ADMIN: privileged mode', () => {
    expect(judgeCapabilities({ effective: hex(SYS_ADMIN), ambient: '0', bounding: '0', uid: 0 })).toMatchObject({ status: 'ok', detail: expect.stringMatching(/privileged/) });
  });

  test('CAP_CHECKPOINT_RESTORE + CAP_SYS_PTRACE: unprivileged mode', () => {
    expect(judgeCapabilities({ effective: hex(CHECKPOINT_RESTORE, SYS_PTRACE), ambient: '0', bounding: '0', uid: 0 })).toMatchObject({
      status: 'ok',
      detail: expect.stringMatching(/--unprivileged/),
    });
  });

  test('neither: FAIL naming what is missing', () => {
    const check = judgeCapabilities({ effective: hex(CHECKPOINT_RESTORE), ambient: '0', bounding: '0', uid: 0 });
    expect(check).toMatchObject({ status: 'FAIL', detail: expect.stringMatching(/no CAP_SYS_PTRACE/) });
    expect(check.fix).toMatch(/CHECKPOINT_RESTORE/);
    expect(judgeCapabilities({ effective: '0', ambient: '0', bounding: '0', uid: 0 }).detail).toMatch(/CAP_CHECKPOINT_RESTORE \/ CAP_SYS_PTRACE/);
  });

  test('not root, none effective, both in the bounding set: a warning pointing at criu file capabilities', () => {
    const check = judgeCapabilities({ effective: '0', ambient: '0', bounding: hex(CHECKPOINT_RESTORE, SYS_PTRACE), uid: 1000 });
    expect(check).toMatchObject({ status: 'warn', fix: expect.stringMatching(/setcap cap_checkpoint_restore,cap_sys_ptrace,cap_setpcap\+eip/) });
    expect(judgeCapabilities({ effective: '0', ambient: '0', bounding: hex(CHECKPOINT_RESTORE), uid: 1000 }).status).toBe('FAIL');
  });

  test('not root: the capabilities reach criu only when ambient', () => {
    const caps = hex(CHECKPOINT_RESTORE, SYS_PTRACE);
    expect(judgeCapabilities({ effective: caps, ambient: '0', bounding: '0', uid: 1000 }).status).toBe('warn');
    expect(judgeCapabilities({ effective: caps, ambient: caps, bounding: '0', uid: 1000 }).status).toBe('ok');
  });
});

describe('app user', () => {
  const SYS_RESOURCE = 24;
  test('an app process of another user without CAP_SYS_RESOURCE is a warning naming it and SYS_RESOURCE', () => {
    const check = judgeAppUsers({ effective: hex(CHECKPOINT_RESTORE, SYS_PTRACE), others: [{ pid: 12, uid: 65534 }, { pid: 13, uid: 65534 }] });
    expect(check).toMatchObject({ status: 'warn', detail: expect.stringMatching(/^process 12 of the app runs as uid 65534 \(and 1 more\)/), fix: expect.stringMatching(/SYS_RESOURCE/) });
  });

  test("CAP_SYS_RESOURCE, an app of stasis's own user, or no app to look at are not warnings", () => {
    expect(judgeAppUsers({ effective: hex(SYS_RESOURCE), others: [{ pid: 12, uid: 65534 }] }).status).toBe('ok');
    expect(judgeAppUsers({ effective: hex(CHECKPOINT_RESTORE, SYS_PTRACE), others: [] }).status).toBe('ok');
    expect(judgeAppUsers({ effective: hex(CHECKPOINT_RESTORE, SYS_PTRACE), others: null }).status).toBe('skip');
  });
});

describe('init and ns_last_pid', () => {
  test('PID 1, stasis as PID 1, or a subreaper are all fine; a broken addon is not', () => {
    expect(judgeInit({ pid: 1, pid1Command: null, subreaperError: null }).detail).toBe('this process is PID 1');
    expect(judgeInit({ pid: 40, pid1Command: '/usr/local/bin/stasis -- python3 app.py', subreaperError: null }).detail).toMatch(/^PID 1 is stasis/);
    expect(judgeInit({ pid: 40, pid1Command: '/sbin/init', subreaperError: null })).toMatchObject({ status: 'ok', detail: expect.stringMatching(/subreaper/) });
    expect(judgeInit({ pid: 40, pid1Command: '/sbin/init', subreaperError: 'native addon not built' }).status).toBe('FAIL');
  });

  test('ns_last_pid not writable is only a warning (the fork fallback is used)', () => {
    expect(judgeNsLastPid({ openError: null, capable: true }).status).toBe('ok');
    expect(judgeNsLastPid({ openError: 'EROFS', capable: true })).toMatchObject({ status: 'warn', detail: expect.stringMatching(/EROFS.*forking/) });
    expect(judgeNsLastPid({ openError: null, capable: false }).detail).toMatch(/no CAP_SYS_ADMIN/);
  });
});

describe('STASIS_DIR', () => {
  const present = (extra: Partial<Extract<DirFacts, { kind: 'present' }>> = {}): DirFacts => ({
    kind: 'present',
    path: '/ck',
    symlink: false,
    directory: true,
    uid: 0,
    mode: 0o40700,
    ourUid: 0,
    writable: true,
    ...extra,
  });

  test('ours, 0700: ok', () => {
    expect(judgeDir(present())).toMatchObject({ status: 'ok', detail: '/ck (mode 700, ours)' });
    expect(judgeDir(present({ mode: 0o40750 })).status).toBe('ok');
  });

  test.each([
    [{ mode: 0o40777 }, /writable by group or others \(mode 777\)/, 'chmod 700 /ck'],
    [{ mode: 0o40720 }, /writable by group or others/, 'chmod 700 /ck'],
    [{ uid: 1000 }, /owned by uid 1000, not by uid 0/, /chown 0 \/ck/],
    [{ symlink: true }, /symbolic link/, /real directory/],
    [{ directory: false }, /not a directory/, /directory/],
    [{ writable: false }, /not writable/, /writable/],
  ])('unsafe or unusable %j: FAIL', (extra, detail, fix) => {
    const check = judgeDir(present(extra));
    expect(check.status).toBe('FAIL');
    expect(check.detail).toMatch(detail);
    expect(check.fix).toMatch(fix);
  });

  test('missing: ok when it can be created; unset: a warning', () => {
    expect(judgeDir({ kind: 'missing', path: '/ck/x', ancestor: '/ck', creatable: true }).status).toBe('ok');
    expect(judgeDir({ kind: 'missing', path: '/ro/x', ancestor: '/ro', creatable: false })).toMatchObject({ status: 'FAIL', fix: 'mkdir -m 700 /ro/x as the user stasis runs as' });
    expect(judgeDir({ kind: 'unset' }).status).toBe('warn');
  });

  test('free space against the newest generation', () => {
    const gib = 1024 ** 3;
    expect(judgeFreeSpace({ free: null, estimate: null }).status).toBe('skip');
    expect(judgeFreeSpace({ free: 10 * gib, estimate: null })).toMatchObject({ status: 'ok', detail: "10.0 GiB free (no generation yet; a dump needs about the app's RSS)" });
    expect(judgeFreeSpace({ free: 10 * gib, estimate: { bytes: gib, from: 'gen-000004' } })).toMatchObject({ status: 'ok', detail: '10.0 GiB free; the last dump (gen-000004) took 1.0 GiB' });
    expect(judgeFreeSpace({ free: 1.5 * gib, estimate: { bytes: gib, from: 'gen-000004' } }).status).toBe('warn');
    expect(judgeFreeSpace({ free: 0.5 * gib, estimate: { bytes: gib, from: 'gen-000004' } }).status).toBe('FAIL');
  });
});

describe('CRIU_FAULT', () => {
  test('130 is ok, another value is a warning', () => {
    expect(judgeCriuFault({ value: '130', wrapperSetsIt: false, virtualMachine: true }).status).toBe('ok');
    expect(judgeCriuFault({ value: '4', wrapperSetsIt: false, virtualMachine: false })).toMatchObject({ status: 'warn', detail: expect.stringMatching(/CRIU_FAULT=4/) });
  });

  test('unset: fine on bare metal or behind a wrapper that sets it; a warning, never a failure, on a VM', () => {
    expect(judgeCriuFault({ value: undefined, wrapperSetsIt: false, virtualMachine: false }).status).toBe('ok');
    expect(judgeCriuFault({ value: '', wrapperSetsIt: true, virtualMachine: true }).status).toBe('ok');
    const vm = judgeCriuFault({ value: undefined, wrapperSetsIt: false, virtualMachine: true });
    expect(vm).toMatchObject({ status: 'warn', detail: expect.stringMatching(/hardware breakpoints.*hangs/) });
    expect(vm.fix).toMatch(/CRIU_FAULT=130/);
  });
});

describe('verdict', () => {
  const check = (status: Check['status']): Check => ({ name: `c-${status}`, status, detail: 'd', fix: status === 'ok' ? null : 'f' });

  test('exit 1 only when a check FAILed', () => {
    expect(doctorExitCode([check('ok'), check('warn'), check('skip')])).toBe(0);
    expect(doctorExitCode([check('ok'), check('FAIL')])).toBe(1);
  });

  test('the table and its last line', () => {
    expect(formatDoctor([check('ok'), check('warn')])).toBe('CHECK   STATUS  DETAIL  HOW TO FIX\nc-ok    ok      d\nc-warn  warn    d       f\n\nReady to checkpoint (1 warning).\n');
    expect(formatDoctor([check('FAIL'), check('FAIL')])).toMatch(/\n2 required checks failed: stasis cannot checkpoint here until they are fixed\.\n$/);
    expect(formatDoctor([check('ok')])).toMatch(/\nReady to checkpoint\.\n$/);
  });
});
