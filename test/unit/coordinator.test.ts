import { constants } from 'node:os';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { CheckpointContext } from '../../src/checkpoint/context.js';
import type { CheckpointState } from '../../src/checkpoint/controller.js';
import { DumpCoordinator } from '../../src/checkpoint/coordinator.js';
import type { DumpOutcome, DumpRequest, Publish } from '../../src/checkpoint/dump.js';
import type { PublishOutcome } from '../../src/store/open.js';
import type { Published } from '../../src/store/upload.js';
import type { LazyEnd, LazyServing } from '../../src/checkpoint/lazy.js';
import { loadConfig } from '../../src/config.js';
import { Supervisor } from '../../src/init/supervisor.js';
import { captureLog, deferred, fakeSystem, settle, type Deferred } from '../helpers/fakes.js';

const { SIGTERM, SIGHUP } = constants.signals;
const APP = 4242;
const committed = (generation: number, mode: 'continue' | 'exit'): DumpOutcome => ({ ok: true, generation, bytes: 1000, durationMs: 5, mode, stats: undefined });
const failed: DumpOutcome = { ok: false, error: 'criu said no', criuErrors: ['Error (criu/cr-dump.c:1): no'] };

/** A coordinator on a real Supervisor whose system calls are fakes, and a dump that ends when the test says. */
function setup(options: { appWaitMs?: number; env?: Record<string, string>; state?: (settled: CheckpointState) => CheckpointState | Promise<CheckpointState> } = {}) {
  const captured = captureLog();
  const config = loadConfig({ STASIS_DIR: '/checkpoints', ...options.env });
  const system = fakeSystem();
  const supervisor = new Supervisor(config, captured.log, system.ports);
  supervisor.start();
  const context = { config, dir: '/checkpoints', log: captured.log, criu: { path: 'criu', version: '4.1.1' }, unprivileged: false, argv: ['app'] } satisfies CheckpointContext;
  const checkpoints: CheckpointState = { enabled: true, context };
  const dumps: { pid: number; request: DumpRequest; result: Deferred<DumpOutcome> }[] = [];
  const dump = (_context: CheckpointContext, pid: number, request: DumpRequest): Promise<DumpOutcome> => {
    const result = deferred<DumpOutcome>();
    dumps.push({ pid, request, result });
    return result.promise;
  };
  const coordinator = new DumpCoordinator(supervisor, options.state?.(checkpoints) ?? checkpoints, captured.log, { dump, appWaitMs: options.appWaitMs ?? 60_000 });
  const adopt = (): void => supervisor.adopt({ pid: APP, kind: 'restored' });
  return { captured, system, supervisor, coordinator, dumps, adopt, context };
}

function lazyServing(): LazyServing & { end: Deferred<LazyEnd>; adoptions: number } {
  const end = deferred<LazyEnd>();
  const serving = { generation: 1, done: end.promise, end, adoptions: 0, adopted: () => void serving.adoptions++, stop: async () => undefined };
  return serving;
}

beforeEach(() => vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] }));
afterEach(() => vi.useRealTimers());

describe('DumpCoordinator: one dump at a time', () => {
  test('concurrent requests join the running dump instead of starting a second', async () => {
    const { coordinator, dumps, adopt } = setup();
    adopt();
    const first = coordinator.request({ mode: 'continue', reason: 'signal' });
    expect(coordinator.state.kind).toBe('dumping');
    const second = coordinator.request({ mode: 'continue', reason: 'control socket' });
    await settle();
    expect(dumps).toHaveLength(1);
    dumps[0]?.result.resolve(committed(1, 'continue'));
    expect(await first).toEqual(committed(1, 'continue'));
    expect(await second).toEqual(committed(1, 'continue'));
    expect(coordinator.state.kind).toBe('idle');
  });

  test('a request after the dump ended starts a new one', async () => {
    const { coordinator, dumps, adopt } = setup();
    adopt();
    const first = coordinator.request({ mode: 'continue', reason: 'signal' });
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await first;
    const second = coordinator.request({ mode: 'continue', reason: 'signal' });
    await settle();
    expect(dumps).toHaveLength(2);
    dumps[1]?.result.resolve(committed(2, 'continue'));
    expect(await second).toMatchObject({ generation: 2 });
  });

  test('a dump that throws is a failed outcome, and the coordinator is idle again', async () => {
    const { coordinator, dumps, adopt, captured } = setup();
    adopt();
    const request = coordinator.request({ mode: 'continue', reason: 'signal' });
    dumps[0]?.result.reject(new Error('EIO'));
    expect(await request).toMatchObject({ ok: false, error: 'dump failed: EIO' });
    expect(coordinator.state.kind).toBe('idle');
    expect(captured.named('dump failed; the app keeps running')).toHaveLength(1);
  });

  test('requests made while the criu probe still runs wait for it, then the first dumps and the second joins', async () => {
    const probe = deferred<CheckpointState>();
    let settled: CheckpointState | undefined;
    const { coordinator, dumps, adopt } = setup({ state: (state) => ((settled = state), probe.promise) });
    adopt();
    const first = coordinator.request({ mode: 'continue', reason: 'signal' });
    const second = coordinator.request({ mode: 'continue', reason: 'control socket' });
    await settle();
    expect(dumps).toHaveLength(0);
    probe.resolve(settled as CheckpointState);
    await settle();
    expect(dumps).toHaveLength(1);
    dumps[0]?.result.resolve(committed(1, 'continue'));
    expect(await first).toEqual(committed(1, 'continue'));
    expect(await second).toEqual(committed(1, 'continue'));
  });

  test('with checkpoints off a request is answered with the reason', async () => {
    const captured = captureLog();
    const supervisor = new Supervisor(loadConfig({}), captured.log, fakeSystem().ports);
    const coordinator = new DumpCoordinator(supervisor, { enabled: false, reason: 'STASIS_DIR is not set' }, captured.log);
    expect(await coordinator.request({ mode: 'exit', reason: 'signal' })).toMatchObject({ ok: false, error: 'checkpoints are off: STASIS_DIR is not set' });
  });
});

describe('DumpCoordinator: before the app runs', () => {
  test('a request waits for the app, then dumps it; signals queued meanwhile reach the app after the dump', async () => {
    const { coordinator, dumps, adopt, system } = setup();
    const request = coordinator.request({ mode: 'continue', reason: 'signal' });
    expect(coordinator.state.kind).toBe('waiting-for-app');
    system.send('SIGHUP');
    await settle();
    expect(dumps).toHaveLength(0);
    adopt();
    await settle();
    expect(dumps.map((dump) => dump.pid)).toEqual([APP]);
    expect(system.kills).toEqual([]);
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await request;
    expect(system.kills).toEqual([[APP, SIGHUP]]);
  });

  test('the wait is bounded: no app, no dump', async () => {
    const { coordinator, dumps } = setup({ appWaitMs: 20 });
    expect(await coordinator.request({ mode: 'continue', reason: 'signal' })).toMatchObject({ ok: false, error: 'no app is running' });
    expect(dumps).toHaveLength(0);
    expect(coordinator.state.kind).toBe('idle');
  });
});

describe('DumpCoordinator: exit mode ends the app', () => {
  test('after a committed exit-mode dump every later request gets that dump, and stasis exits 0 when the app dies', async () => {
    const { coordinator, dumps, adopt, system, captured } = setup();
    adopt();
    const request = coordinator.request({ mode: 'exit', reason: 'signal' });
    await settle();
    // dump.ts kills the stopped app after the commit, before the dump returns
    system.childExits({ pid: APP, code: null, signal: constants.signals.SIGKILL });
    await settle();
    expect(system.exits).toEqual([]);
    dumps[0]?.result.resolve(committed(1, 'exit'));
    expect(await request).toEqual(committed(1, 'exit'));
    expect(coordinator.state.kind).toBe('ended');
    expect(await coordinator.request({ mode: 'continue', reason: 'control socket' })).toEqual(committed(1, 'exit'));
    expect(dumps).toHaveLength(1);
    expect(captured.named('dump requested after the app was dumped and ended: answered with that dump')).toHaveLength(1);
    await vi.waitFor(() => expect(system.exits).toEqual([0]));
  });

  test('a failed exit-mode dump ends nothing: the app runs on and the next request dumps again', async () => {
    const { coordinator, dumps, adopt } = setup();
    adopt();
    const request = coordinator.request({ mode: 'exit', reason: 'signal' });
    dumps[0]?.result.resolve(failed);
    expect(await request).toEqual(failed);
    expect(coordinator.state.kind).toBe('idle');
    void coordinator.request({ mode: 'exit', reason: 'signal' });
    await settle();
    expect(dumps).toHaveLength(2);
  });

  test('the app dying during a continue-mode dump ends stasis with its status once the dump is over', async () => {
    const { coordinator, dumps, adopt, system } = setup();
    adopt();
    const request = coordinator.request({ mode: 'continue', reason: 'signal' });
    system.childExits({ pid: APP, code: null, signal: constants.signals.SIGKILL });
    await settle();
    expect(system.exits).toEqual([]);
    dumps[0]?.result.resolve(failed);
    await request;
    await vi.waitFor(() => expect(system.exits).toEqual([137]));
  });
});

describe('DumpCoordinator: lazy restores', () => {
  test('a dump waits for the last page without holding signals, then dumps', async () => {
    const { coordinator, dumps, adopt, system, supervisor } = setup();
    const serving = lazyServing();
    coordinator.followLazyRestore(serving);
    adopt();
    await settle();
    expect(serving.adoptions).toBe(1);
    const request = coordinator.request({ mode: 'continue', reason: 'signal' });
    await settle();
    expect(coordinator.state.kind).toBe('waiting-for-lazy');
    expect(dumps).toHaveLength(0);
    system.send('SIGHUP');
    expect(system.kills).toEqual([[APP, SIGHUP]]);
    coordinator.tick();
    serving.end.resolve({ kind: 'served' });
    await settle();
    expect(dumps).toHaveLength(1);
    dumps[0]?.result.resolve(committed(2, 'continue'));
    expect(await request).toMatchObject({ generation: 2 });
    expect(supervisor.appPid).toBe(APP);
  });

  test('a lazy restore that failed fails the dump with the reason, and criu never runs', async () => {
    const { coordinator, dumps, adopt } = setup();
    const serving = lazyServing();
    coordinator.followLazyRestore(serving);
    adopt();
    const request = coordinator.request({ mode: 'exit', reason: 'signal' });
    serving.end.resolve({ kind: 'failed', errors: ['Error (criu/uffd.c:1): gone'] });
    expect(await request).toEqual({
      ok: false,
      error: "not dumped: the lazy restore failed, the app's memory was incomplete and it was killed",
      criuErrors: ['Error (criu/uffd.c:1): gone'],
    });
    expect(dumps).toHaveLength(0);
  });

  test("stasis's exit stops the serving", async () => {
    const { coordinator, adopt, supervisor } = setup();
    const serving = lazyServing();
    const stop = vi.spyOn(serving, 'stop');
    coordinator.followLazyRestore(serving);
    adopt();
    await supervisor.finish(0);
    expect(stop).toHaveBeenCalledOnce();
  });
});

describe('DumpCoordinator: SIGTERM with checkpoint-on-term', () => {
  test('waits for the running dump, then dumps in exit mode; no SIGTERM reaches the app when that commits', async () => {
    const { coordinator, dumps, adopt, system } = setup();
    adopt();
    void coordinator.request({ mode: 'continue', reason: 'signal' });
    const term = coordinator.dumpOnTerm(SIGTERM);
    await settle();
    expect(dumps).toHaveLength(1);
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await settle();
    expect(dumps.map((dump) => dump.request)).toEqual([
      { mode: 'continue', reason: 'signal' },
      { mode: 'exit', reason: 'SIGTERM' },
    ]);
    dumps[1]?.result.resolve(committed(2, 'exit'));
    await term;
    expect(system.kills).toEqual([]);
  });

  test('forwards SIGTERM when the exit-mode dump fails', async () => {
    const { coordinator, dumps, adopt, system, captured } = setup();
    adopt();
    const term = coordinator.dumpOnTerm(SIGTERM);
    await settle();
    dumps[0]?.result.resolve(failed);
    await term;
    expect(system.kills).toEqual([[APP, SIGTERM]]);
    expect(captured.named('dump on SIGTERM failed; forwarding SIGTERM')).toHaveLength(1);
  });
});

describe('DumpCoordinator: interval ticks', () => {
  test('skipped with no app, while a dump runs and while a lazy restore serves; else a continue-mode dump', async () => {
    const { coordinator, dumps, adopt, captured } = setup();
    coordinator.tick();
    const serving = lazyServing();
    coordinator.followLazyRestore(serving);
    adopt();
    coordinator.tick();
    serving.end.resolve({ kind: 'served' });
    await settle();
    coordinator.tick();
    expect(dumps.map((dump) => dump.request)).toEqual([{ mode: 'continue', reason: 'interval' }]);
    coordinator.tick();
    await settle();
    expect(dumps).toHaveLength(1);
    expect(captured.named('interval checkpoint skipped: a dump or a lazy restore is running, or no app yet')).toHaveLength(3);
  });

  test('the interval timer ticks and is cleared on exit', async () => {
    const { coordinator, dumps, adopt, supervisor } = setup();
    adopt();
    coordinator.startInterval(1000);
    vi.advanceTimersByTime(1000);
    await settle();
    expect(dumps).toHaveLength(1);
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await settle();
    await supervisor.finish(0);
    vi.advanceTimersByTime(5000);
    expect(dumps).toHaveLength(1);
  });
});

describe('DumpCoordinator: uploads to the object store (STASIS_STORE)', () => {
  const published = (generation: number): Published => ({ id: `gen-00000${generation}-0a0b0c0d`, key: `p/gen-00000${generation}-0a0b0c0d`, generation, objects: 5, bytes: 1000, storedBytes: 300, uploadMs: 7, pruned: [] });

  function withStore() {
    const uploads: { local: { generation: number; path: string }; result: Deferred<PublishOutcome> }[] = [];
    const store = {
      publish: (local: { generation: number; path: string }): Promise<PublishOutcome> => {
        const result = deferred<PublishOutcome>();
        uploads.push({ local, result });
        return result.promise;
      },
      fetchForRestore: async (): Promise<void> => undefined,
    };
    const publishes: (Publish | undefined)[] = [];
    const base = setup();
    const context: CheckpointContext = { ...base.context, store };
    const dumps: { request: DumpRequest; result: Deferred<DumpOutcome> }[] = [];
    const dump = (_context: CheckpointContext, _pid: number, request: DumpRequest, publish?: Publish): Promise<DumpOutcome> => {
      publishes.push(publish);
      const result = deferred<DumpOutcome>();
      dumps.push({ request, result });
      return result.promise;
    };
    const coordinator = new DumpCoordinator(base.supervisor, { enabled: true, context }, base.captured.log, { dump });
    base.adopt();
    return { coordinator, dumps, uploads, publishes, captured: base.captured };
  }

  test('continue mode: the answer waits for the upload, which runs after the dump with the state "uploading"', async () => {
    const { coordinator, dumps, uploads, publishes } = withStore();
    const request = coordinator.request({ mode: 'continue', reason: 'signal' });
    await settle();
    expect(publishes).toEqual([undefined]);
    dumps[0]?.result.resolve(committed(3, 'continue'));
    await settle();
    expect(coordinator.state.kind).toBe('uploading');
    expect(uploads[0]?.local).toEqual({ generation: 3, path: '/checkpoints/gen-000003' });
    uploads[0]?.result.resolve({ ok: true, published: published(3) });
    expect(await request).toMatchObject({ ok: true, generation: 3, remote: { id: 'gen-000003-0a0b0c0d' } });
    expect(coordinator.state.kind).toBe('idle');
  });

  test('requests during a continue-mode upload start one new dump once the upload is done', async () => {
    const { coordinator, dumps, uploads } = withStore();
    const first = coordinator.request({ mode: 'continue', reason: 'signal' });
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await settle();
    const second = coordinator.request({ mode: 'continue', reason: 'control socket' });
    const third = coordinator.request({ mode: 'continue', reason: 'signal' });
    await settle();
    expect(dumps).toHaveLength(1);
    uploads[0]?.result.resolve({ ok: true, published: published(1) });
    expect(await first).toMatchObject({ generation: 1 });
    await settle();
    expect(dumps).toHaveLength(2);
    dumps[1]?.result.resolve(committed(2, 'continue'));
    await settle();
    uploads[1]?.result.resolve({ ok: true, published: published(2) });
    expect(await second).toMatchObject({ generation: 2 });
    expect(await third).toMatchObject({ generation: 2 });
  });

  test('a failed upload is a failed outcome naming why; the coordinator is idle again', async () => {
    const { coordinator, dumps, uploads } = withStore();
    const request = coordinator.request({ mode: 'continue', reason: 'signal' });
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await settle();
    uploads[0]?.result.resolve({ ok: false, error: 'generation 1 is committed in STASIS_DIR but not in the object store: bucket b does not exist' });
    expect(await request).toMatchObject({ ok: false, error: expect.stringContaining('bucket b does not exist') });
    expect(coordinator.state.kind).toBe('idle');
  });

  test('an interval tick during an upload is skipped', async () => {
    const { coordinator, dumps, captured } = withStore();
    void coordinator.request({ mode: 'continue', reason: 'signal' });
    dumps[0]?.result.resolve(committed(1, 'continue'));
    await settle();
    coordinator.tick();
    expect(dumps).toHaveLength(1);
    expect(captured.named('interval checkpoint skipped: a dump or a lazy restore is running, or no app yet')).toHaveLength(1);
  });

  test('exit mode: the dump gets the upload to run before it ends the app; while it runs the state is "uploading" and requests join', async () => {
    const { coordinator, dumps, uploads, publishes } = withStore();
    const request = coordinator.request({ mode: 'exit', reason: 'SIGTERM' });
    await settle();
    const publish = publishes[0];
    expect(publish).toBeTypeOf('function');
    const upload = publish?.({ generation: 4, path: '/checkpoints/gen-000004' });
    expect(coordinator.state.kind).toBe('uploading');
    const joined = coordinator.request({ mode: 'continue', reason: 'control socket' });
    uploads[0]?.result.resolve({ ok: true, published: published(4) });
    await upload;
    dumps[0]?.result.resolve({ ...(committed(4, 'exit') as Extract<DumpOutcome, { ok: true }>), remote: published(4) });
    expect(await request).toMatchObject({ generation: 4, remote: { id: 'gen-000004-0a0b0c0d' } });
    expect(await joined).toMatchObject({ generation: 4 });
    expect(coordinator.state.kind).toBe('ended');
  });
});
