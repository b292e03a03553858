import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ownByLibuv, releaseFromLibuv } from '../../src/children.js';
import { dumpApp } from '../../src/checkpoint/dump.js';
import { LAST_RESTORE_FILE } from '../../src/checkpoint/history.js';
import { QUARANTINE_DIR, RESTORE_ATTEMPT_FILE } from '../../src/checkpoint/layout.js';
import { restoreNewest } from '../../src/checkpoint/restore.js';
import type { DaemonExit, LazyDaemon } from '../../src/criu/lazy.js';
import { captureLog, deferred, settle } from '../helpers/fakes.js';
import { APP_PID, RESTORED_PID, checkpointContext, fail, fakeCriu, succeed, tempCheckpointDir } from '../helpers/fake-criu.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A checkpoint directory with `count` generations made by dumpApp (through the fake criu). */
async function setup(count: number, env: Record<string, string> = {}) {
  const dir = tempCheckpointDir();
  dirs.push(dir);
  const captured = captureLog();
  const criu = fakeCriu(dir);
  const context = checkpointContext(dir, captured.log, env);
  for (let i = 0; i < count; i++) await dumpApp(context, APP_PID, { mode: 'continue', reason: 'test' }, criu.ports);
  criu.calls.length = 0;
  const attempt = (generation: number): string => join(dir, `gen-${String(generation).padStart(6, '0')}`, RESTORE_ATTEMPT_FILE);
  const quarantined = (): string[] => (existsSync(join(dir, QUARANTINE_DIR)) ? readdirSync(join(dir, QUARANTINE_DIR)).map((name) => name.slice(0, 10)) : []);
  const lastRestore = (): unknown => JSON.parse(readFileSync(join(dir, LAST_RESTORE_FILE), 'utf8'));
  return { dir, captured, criu, context, attempt, quarantined, lastRestore };
}

const BROKEN = ['Error (criu/cr-restore.c:1): Restoring FAILED.'];

describe('restoreNewest', () => {
  test('restores the newest generation, removes its attempt record and records the restore', async () => {
    const { criu, context, attempt, lastRestore } = await setup(2);
    const outcome = await restoreNewest(context, criu.ports);
    expect(outcome).toEqual({ kind: 'restored', pid: RESTORED_PID, generation: 2 });
    expect(criu.calls.map((call) => call.args[0])).toEqual(['restore']);
    expect(criu.calls[0]?.args).toEqual(expect.arrayContaining(['--inherit-fd', 'fd[1]:pipe:[1234]']));
    expect(existsSync(attempt(2))).toBe(false);
    expect(lastRestore()).toMatchObject({ outcome: 'restored', generation: 2, pid: RESTORED_PID, lazy: false });
  });

  test('nothing to restore: none', async () => {
    const { criu, context } = await setup(0);
    expect(await restoreNewest(context, criu.ports)).toEqual({ kind: 'none' });
    expect(criu.calls).toEqual([]);
  });

  test('a generation criu fails to restore is quarantined and the next older one is tried', async () => {
    const { criu, context, quarantined } = await setup(2);
    let runs = 0;
    criu.behave = (call) => (runs++ === 0 ? fail(BROKEN)(call) : succeed(call));
    expect(await restoreNewest(context, criu.ports)).toMatchObject({ kind: 'restored', generation: 1 });
    expect(quarantined()).toEqual(['gen-000002']);
  });

  test('STASIS_ON_RESTORE_FAILURE=exit: the first failure is the outcome', async () => {
    const { criu, context, lastRestore } = await setup(2, { STASIS_ON_RESTORE_FAILURE: 'exit' });
    criu.behave = fail(BROKEN);
    expect(await restoreNewest(context, criu.ports)).toEqual({ kind: 'failed', generation: 2, criuErrors: BROKEN });
    expect(criu.calls).toHaveLength(1);
    expect(lastRestore()).toMatchObject({ outcome: 'failed', generation: 2 });
  });

  test('a restore that fails while the criu probe says criu cannot run: no quarantine, no attempt left, checkpoints off decide', async () => {
    const { criu, context, attempt, quarantined } = await setup(2, { STASIS_ON_RESTORE_FAILURE: 'exit' });
    criu.behave = fail(['cannot run criu: spawn /nope ENOENT']);
    const started: string[] = [];
    const hooks = { criuStarted: () => void started.push('criu'), criuProblem: async () => 'cannot run criu (/nope): spawn /nope ENOENT' };
    expect(await restoreNewest(context, criu.ports, hooks)).toEqual({ kind: 'none' });
    expect(started).toEqual(['criu']);
    expect(quarantined()).toEqual([]);
    expect(existsSync(attempt(2))).toBe(false);
  });

  test('criuStarted is called once criu runs, before the restore has finished', async () => {
    const { criu, context } = await setup(1);
    const running = deferred<void>();
    const order: string[] = [];
    const behave = criu.behave;
    criu.behave = async (call) => {
      order.push('criu spawned');
      await running.promise;
      return behave(call);
    };
    const hooked = deferred<void>();
    const restoring = restoreNewest(context, criu.ports, { criuStarted: () => (order.push('started hook'), hooked.resolve()) });
    await hooked.promise;
    expect(order).toEqual(['criu spawned', 'started hook']);
    running.resolve();
    expect(await restoring).toMatchObject({ kind: 'restored', generation: 1 });
  });

  test('criu killed after STASIS_CRIU_TIMEOUT: what it had restored is killed, but not stasis\'s own helpers', async () => {
    const { criu, context } = await setup(1);
    criu.behave = fail(['criu did not finish within 2s (STASIS_CRIU_TIMEOUT) and was killed'], { timedOut: true });
    const helper = 9000;
    criu.table = [
      { pid: RESTORED_PID, ppid: process.pid, state: 'S' },
      { pid: RESTORED_PID + 1, ppid: RESTORED_PID, state: 'S' },
      { pid: helper, ppid: process.pid, state: 'S' },
      { pid: helper + 1, ppid: helper, state: 'S' },
    ];
    ownByLibuv(helper);
    expect(await restoreNewest(context, criu.ports).finally(() => releaseFromLibuv(helper))).toEqual({ kind: 'none' });
    expect(criu.kills).toEqual([
      [RESTORED_PID, 'SIGKILL'],
      [RESTORED_PID + 1, 'SIGKILL'],
    ]);
  });
});

describe('restoreNewest: the crash-loop guard (restore-attempt record)', () => {
  test('one unfinished restore is forgiven, two quarantine the generation without running criu', async () => {
    const { criu, context, attempt, quarantined, captured } = await setup(1);
    writeFileSync(attempt(1), '2025-11-27T08:00:00.000Z\n');
    expect(await restoreNewest(context, criu.ports)).toMatchObject({ kind: 'restored', generation: 1 });
    expect(captured.named('an earlier restore of this generation never finished; trying once more')).toHaveLength(1);

    const again = await setup(1);
    writeFileSync(again.attempt(1), '2025-11-27T08:00:00.000Z\n2025-11-27T08:05:00.000Z\n');
    expect(await restoreNewest(again.context, again.criu.ports)).toEqual({ kind: 'none' });
    expect(again.criu.calls).toEqual([]);
    expect(again.quarantined()).toEqual(['gen-000001']);
    expect(quarantined()).toEqual([]);
  });

  test('an unreadable record counts as one unfinished restore: with the record unwritable too, no blind restore', async () => {
    const { criu, context, attempt, captured } = await setup(1);
    mkdirSync(attempt(1));
    criu.appendError = Object.assign(new Error('EISDIR: illegal operation on a directory'), { code: 'EISDIR' });
    expect(await restoreNewest(context, criu.ports)).toEqual({ kind: 'none' });
    expect(criu.calls).toEqual([]);
    expect(captured.problems()[0]).toBe('cannot read the restore-attempt record; counting it as one unfinished restore');
  });

  test('a restore that dies leaves its line in the record', async () => {
    const { criu, context, attempt } = await setup(1);
    criu.behave = () => {
      expect(readFileSync(attempt(1), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
      throw new Error('stasis killed here');
    };
    await restoreNewest(context, criu.ports);
    expect(existsSync(attempt(1))).toBe(true);
  });

  test('the record cannot be written, no earlier restore unfinished: restored anyway, with a warning', async () => {
    const { criu, context, captured } = await setup(1);
    criu.appendError = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    expect(await restoreNewest(context, criu.ports)).toMatchObject({ kind: 'restored', generation: 1 });
    expect(captured.problems()).toEqual([
      'cannot record the restore attempt: restoring anyway, but if this restore never finishes the next start cannot tell',
    ]);
  });

  test('the record cannot be written and an earlier restore never finished: not restored blind a second time, not quarantined', async () => {
    const { criu, context, attempt, quarantined, captured } = await setup(1);
    writeFileSync(attempt(1), '2025-11-27T08:00:00.000Z\n');
    criu.appendError = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    expect(await restoreNewest(context, criu.ports)).toEqual({ kind: 'none' });
    expect(criu.calls).toEqual([]);
    expect(quarantined()).toEqual([]);
    expect(captured.problems().at(-1)).toMatch(/^cannot record the restore attempt: .*not restoring it blind a second time$/);

    const exiting = await setup(1, { STASIS_ON_RESTORE_FAILURE: 'exit' });
    writeFileSync(exiting.attempt(1), '2025-11-27T08:00:00.000Z\n');
    exiting.criu.appendError = criu.appendError;
    expect(await restoreNewest(exiting.context, exiting.criu.ports)).toMatchObject({ kind: 'failed', generation: 1 });
    expect(exiting.criu.calls).toEqual([]);
  });

  test('a restore record that cannot be written is a warning, not a failed restore', async () => {
    const { dir, criu, context, captured } = await setup(1);
    mkdirSync(join(dir, LAST_RESTORE_FILE));
    expect(await restoreNewest(context, criu.ports)).toMatchObject({ kind: 'restored' });
    expect(captured.problems()).toEqual(['cannot record this restore for `stasis status`; it shows an older one']);
  });
});

describe('restoreNewest: lazy', () => {
  function fakeDaemon() {
    const exit = deferred<DaemonExit>();
    const daemon: LazyDaemon & { killed: number } = { pid: 777, exited: exit.promise, killed: 0, kill: () => void daemon.killed++ };
    return { daemon, exit };
  }

  test('the attempt record stays until every page is in; the serving acts only once the app is adopted', async () => {
    const { criu, context, attempt, lastRestore } = await setup(1, { STASIS_LAZY: 'true' });
    const { daemon, exit } = fakeDaemon();
    const ports = { ...criu.ports, probeLazy: async () => ({ ok: true }) as const, startLazyDaemon: async () => daemon };
    const outcome = await restoreNewest(context, ports);
    expect(outcome).toMatchObject({ kind: 'restored', generation: 1 });
    expect(criu.calls[0]?.args).toContain('--lazy-pages');
    expect(lastRestore()).toMatchObject({ lazy: true });
    if (outcome.kind !== 'restored' || outcome.lazy === undefined) throw new Error('not lazy');
    exit.resolve({ code: 0, signal: null, durationMs: 50, errors: [] });
    await settle();
    expect(existsSync(attempt(1))).toBe(true);
    outcome.lazy.adopted();
    expect(await outcome.lazy.done).toEqual({ kind: 'served' });
    expect(existsSync(attempt(1))).toBe(false);
  });

  test('a daemon socket that could not be removed is a warning', async () => {
    const { criu, context, captured } = await setup(1, { STASIS_LAZY: 'true' });
    const { daemon, exit } = fakeDaemon();
    const ports = { ...criu.ports, probeLazy: async () => ({ ok: true }) as const, startLazyDaemon: async () => daemon };
    const outcome = await restoreNewest(context, ports);
    if (outcome.kind !== 'restored' || outcome.lazy === undefined) throw new Error('not lazy');
    outcome.lazy.adopted();
    exit.resolve({ code: 0, signal: null, durationMs: 50, errors: [], cleanupError: 'cannot remove lazy-pages.socket: EROFS' });
    expect(await outcome.lazy.done).toEqual({ kind: 'served' });
    expect(captured.problems()).toEqual(['the lazy-pages daemon left its socket behind']);
  });

  test('the daemon failing first kills the app and keeps the record', async () => {
    const { criu, context, attempt, captured } = await setup(1, { STASIS_LAZY: 'true' });
    const { daemon, exit } = fakeDaemon();
    const ports = { ...criu.ports, probeLazy: async () => ({ ok: true }) as const, startLazyDaemon: async () => daemon };
    const outcome = await restoreNewest(context, ports);
    if (outcome.kind !== 'restored' || outcome.lazy === undefined) throw new Error('not lazy');
    outcome.lazy.adopted();
    exit.resolve({ code: 1, signal: null, durationMs: 50, errors: ['Error (criu/uffd.c:1): boom'] });
    expect(await outcome.lazy.done).toEqual({ kind: 'failed', errors: ['Error (criu/uffd.c:1): boom'] });
    expect(criu.signals).toEqual([{ pid: RESTORED_PID, signal: 'SIGKILL', committed: true }]);
    expect(existsSync(attempt(1))).toBe(true);
    expect(captured.problems()[0]).toMatch(/^lazy restore failed/);
  });

  test('a lazy restore criu cannot finish is retried eagerly from the same generation', async () => {
    const { criu, context } = await setup(1, { STASIS_LAZY: 'true' });
    const { daemon, exit } = fakeDaemon();
    daemon.kill = () => exit.resolve({ code: null, signal: 'SIGKILL', durationMs: 5, errors: [] });
    const ports = { ...criu.ports, probeLazy: async () => ({ ok: true }) as const, startLazyDaemon: async () => daemon };
    let runs = 0;
    criu.behave = (call) => (runs++ === 0 ? fail(['Error (criu/uffd.c:1): no daemon'])(call) : succeed(call));
    const outcome = await restoreNewest(context, ports);
    expect(outcome).toEqual({ kind: 'restored', pid: RESTORED_PID, generation: 1 });
    expect(criu.calls.map((call) => call.args.includes('--lazy-pages'))).toEqual([true, false]);
  });
});
