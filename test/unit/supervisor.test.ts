import { constants } from 'node:os';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Supervisor } from '../../src/init/supervisor.js';
import { captureLog, errno, fakeSystem, settle } from '../helpers/fakes.js';

const { SIGHUP, SIGUSR1, SIGTERM, SIGQUIT, SIGKILL } = constants.signals;
const APP = 4242;

function setup(env: Record<string, string> = {}) {
  const captured = captureLog();
  const system = fakeSystem();
  const supervisor = new Supervisor(loadConfig(env), captured.log, system.ports);
  supervisor.start();
  return { captured, system, supervisor, adopt: () => supervisor.adopt({ pid: APP, kind: 'restored' }) };
}

beforeEach(() => vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] }));
afterEach(() => vi.useRealTimers());

describe('Supervisor: forwarding', () => {
  test('signals reach the app; those that arrive before it are queued and delivered in order on adoption', () => {
    const { system, adopt } = setup();
    system.send('SIGHUP');
    system.send('SIGUSR1');
    expect(system.kills).toEqual([]);
    adopt();
    expect(system.kills).toEqual([[APP, SIGHUP], [APP, SIGUSR1]]);
    system.send('SIGTERM');
    expect(system.kills.at(-1)).toEqual([APP, SIGTERM]);
  });

  test('STASIS_SIGNAL_GROUP sends to the process group; STASIS_REWRITE rewrites and drops', () => {
    const { system, adopt } = setup({ STASIS_SIGNAL_GROUP: 'true', STASIS_REWRITE: 'TERM:QUIT,USR1:0' });
    adopt();
    system.send('SIGTERM');
    system.send('SIGUSR1');
    system.send('SIGHUP');
    expect(system.kills).toEqual([[-APP, SIGQUIT], [-APP, SIGHUP]]);
  });

  test('an intercepted signal goes to its handler, not to the app', () => {
    const { system, supervisor, adopt } = setup();
    const handler = vi.fn();
    supervisor.intercept(constants.signals.SIGUSR2, handler);
    adopt();
    system.send('SIGUSR2');
    expect(handler).toHaveBeenCalledOnce();
    expect(system.kills).toEqual([]);
  });

  test('a failed forward: ESRCH (the app is exiting) at debug, anything else at warn', () => {
    const { system, adopt, captured } = setup();
    adopt();
    system.failKill = () => errno('ESRCH');
    system.send('SIGHUP');
    expect(captured.problems()).toEqual([]);
    system.failKill = () => errno('EPERM');
    system.send('SIGHUP');
    expect(captured.problems()).toEqual(['signal not delivered']);
  });
});

describe('Supervisor: holding signals', () => {
  test('signals are queued while a hold is in force and delivered in order when the last one is released', () => {
    const { system, supervisor, adopt } = setup();
    adopt();
    const first = supervisor.holdSignals();
    const second = supervisor.holdSignals();
    system.send('SIGHUP');
    system.send('SIGTERM');
    first();
    first();
    expect(system.kills).toEqual([]);
    second();
    expect(system.kills).toEqual([[APP, SIGHUP], [APP, SIGTERM]]);
  });

  test('whenAdopted resolves with the app', async () => {
    const { supervisor, adopt } = setup();
    const adopted = supervisor.whenAdopted();
    adopt();
    expect(await adopted).toEqual({ pid: APP, kind: 'restored' });
  });
});

describe('Supervisor: exit decisions', () => {
  test.each([
    [{ code: 3, signal: null }, {}, 3],
    [{ code: null, signal: SIGKILL }, {}, 137],
    [{ code: null, signal: SIGTERM }, { STASIS_REMAP_EXIT: '143:0' }, 0],
  ])('the restored app exits with %j (%j): stasis exits %i', async (status, env, code) => {
    const { system, adopt } = setup(env);
    adopt();
    system.childExits({ pid: APP, ...status });
    await vi.waitFor(() => expect(system.exits).toEqual([code]));
  });

  test('a child reaped before the restored app is adopted is its exit: adoption ends stasis', async () => {
    const { system, adopt } = setup();
    system.childExits({ pid: APP, code: 7, signal: null });
    system.childExits({ pid: 999, code: 0, signal: null });
    expect(system.exits).toEqual([]);
    adopt();
    await vi.waitFor(() => expect(system.exits).toEqual([7]));
  });

  test('an app exit during a hold is settled after the release, asking whether stasis ended it on purpose', async () => {
    const { system, supervisor, adopt } = setup();
    let onPurpose = false;
    supervisor.decideEndedOnPurpose(() => onPurpose);
    adopt();
    const release = supervisor.holdSignals();
    system.childExits({ pid: APP, code: null, signal: SIGKILL });
    await settle();
    expect(system.exits).toEqual([]);
    onPurpose = true;
    release();
    await vi.waitFor(() => expect(system.exits).toEqual([0]));
  });

  test('processes left behind get SIGTERM, then SIGKILL after the grace period; a cleanup that fails is logged and stasis still exits', async () => {
    const { system, supervisor, adopt, captured } = setup({ STASIS_GRACE: '50ms' });
    adopt();
    system.table = [{ pid: 5000, ppid: process.pid, state: 'S' }];
    supervisor.onExit(async () => {
      throw new Error('socket gone');
    });
    system.childExits({ pid: APP, code: 0, signal: null });
    await vi.waitFor(() => expect(system.exits).toEqual([0]), { timeout: 4000 });
    expect(system.kills).toEqual([[5000, 'SIGTERM'], [5000, 'SIGKILL']]);
    expect(captured.problems()).toEqual(['grace period over: sending SIGKILL', 'a cleanup before exiting failed']);
  });

  test('a process left behind that cannot be signalled (EPERM) is logged, not ignored', async () => {
    const { system, supervisor, captured } = setup({ STASIS_GRACE: '20ms' });
    system.table = [{ pid: 5000, ppid: process.pid, state: 'S' }];
    system.failKill = () => errno('EPERM');
    const finished = supervisor.finish(1);
    setTimeout(() => (system.table = []), 10);
    await finished;
    expect(captured.problems()).toContain('cannot signal some processes left behind');
    expect(system.exits).toEqual([1]);
  });
});
