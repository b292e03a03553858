import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { dumpApp } from '../../src/checkpoint/dump.js';
import { FAILED_DUMP_LOG } from '../../src/checkpoint/layout.js';
import { captureLog } from '../helpers/fakes.js';
import { APP_PID, argAfter, checkpointContext, fail, fakeCriu, succeed, tempCheckpointDir } from '../helpers/fake-criu.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(env: Record<string, string> = {}) {
  const dir = tempCheckpointDir();
  dirs.push(dir);
  const captured = captureLog();
  return { dir, captured, criu: fakeCriu(dir), context: checkpointContext(dir, captured.log, env) };
}

const listing = (dir: string): string[] => readdirSync(dir).sort();

describe('dumpApp', () => {
  test('continue mode: criu leaves the app running, the generation is committed and current, nothing is signalled', async () => {
    const { dir, criu, context } = setup();
    const outcome = await dumpApp(context, APP_PID, { mode: 'continue', reason: 'signal' }, criu.ports);
    expect(outcome).toMatchObject({ ok: true, generation: 1, mode: 'continue' });
    expect(criu.calls[0]?.args).toContain('--leave-running');
    expect(argAfter(criu.calls[0]?.args ?? [], '--tree')).toBe(String(APP_PID));
    expect(listing(dir)).toEqual(['current', 'gen-000001']);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
    const metadata = JSON.parse(readFileSync(join(dir, 'gen-000001', 'stasis.json'), 'utf8'));
    expect(metadata).toMatchObject({ generation: 1, appPid: APP_PID, mode: 'continue', argv: ['app', '--serve'] });
    expect(metadata.images).toMatchObject({ 'inventory.img': 9, 'pages-1.img': 4096 });
    expect(criu.signals).toEqual([]);
  });

  test('exit mode: criu leaves the tree stopped, and it is killed only once the generation is committed', async () => {
    const { criu, context } = setup();
    const outcome = await dumpApp(context, APP_PID, { mode: 'exit', reason: 'SIGTERM' }, criu.ports);
    expect(outcome).toMatchObject({ ok: true, generation: 1, mode: 'exit' });
    expect(criu.calls[0]?.args).toContain('--leave-stopped');
    expect(criu.signals).toEqual([{ pid: APP_PID, signal: 'SIGKILL', committed: true }]);
  });

  test('generations count up and are pruned to STASIS_KEEP', async () => {
    const { dir, criu, context } = setup({ STASIS_KEEP: '2' });
    for (let i = 0; i < 3; i++) await dumpApp(context, APP_PID, { mode: 'continue', reason: 'interval' }, criu.ports);
    expect(listing(dir)).toEqual(['current', 'gen-000002', 'gen-000003']);
  });

  test("a failed criu dump in exit mode resumes the app, commits nothing and keeps criu's log", async () => {
    const { dir, criu, context, captured } = setup();
    criu.behave = fail(['Error (criu/files-reg.c:1): Can\'t dump ghost file /tmp/x of 2097152 size, increase limit']);
    const outcome = await dumpApp(context, APP_PID, { mode: 'exit', reason: 'signal' }, criu.ports);
    expect(outcome).toMatchObject({ ok: false, criuErrors: [expect.stringMatching(/ghost file/)] });
    expect(criu.signals).toEqual([{ pid: APP_PID, signal: 'SIGCONT', committed: false }]);
    expect(listing(dir)).toEqual([FAILED_DUMP_LOG]);
    expect(readFileSync(join(dir, FAILED_DUMP_LOG), 'utf8')).toMatch(/ghost file/);
    expect(captured.named('dump failed; the app keeps running')).toHaveLength(1);
  });

  test('a failed criu dump in continue mode leaves the app alone (criu resumed it), unless criu timed out', async () => {
    const { criu, context } = setup();
    criu.behave = fail(['Error (criu/cr-dump.c:1): boom']);
    await dumpApp(context, APP_PID, { mode: 'continue', reason: 'signal' }, criu.ports);
    expect(criu.signals).toEqual([]);
    criu.behave = fail(['criu did not finish within 2s (STASIS_CRIU_TIMEOUT) and was killed'], { timedOut: true });
    await dumpApp(context, APP_PID, { mode: 'continue', reason: 'signal' }, criu.ports);
    expect(criu.signals).toEqual([{ pid: APP_PID, signal: 'SIGCONT', committed: false }]);
  });

  test("a child of the app running as another user: the failure names it and CAP_SYS_RESOURCE", async () => {
    const { criu, context } = setup();
    criu.behave = fail(["Error (criu/cr-dump.c:323): Can't get rlimit 0: Operation not permitted"]);
    criu.table = [{ pid: APP_PID + 1, ppid: APP_PID, state: 'S' }];
    criu.otherUids.set(APP_PID + 1, 65534);
    const outcome = await dumpApp(context, APP_PID, { mode: 'continue', reason: 'signal' }, criu.ports);
    expect(outcome).toMatchObject({ ok: false, error: expect.stringMatching(new RegExp(`^process ${APP_PID + 1} of the app runs as uid 65534; criu needs CAP_SYS_RESOURCE`)) });
  });

  test('the app dying during the dump is said so', async () => {
    const { criu, context, captured } = setup();
    criu.behave = fail(['Error (criu/cr-dump.c:1): boom']);
    criu.alive = false;
    const outcome = await dumpApp(context, APP_PID, { mode: 'continue', reason: 'signal' }, criu.ports);
    expect(outcome).toMatchObject({ ok: false, error: expect.stringMatching(/^the app died during the dump/) });
    expect(captured.named('dump failed; the app died during it')).toHaveLength(1);
  });

  test('a generation that cannot be committed resumes an exit-mode app and leaves no half generation', async () => {
    const { dir, criu, context } = setup();
    criu.behave = (call) => {
      const result = succeed(call);
      // the images vanish before the commit (e.g. the volume was pulled)
      rmSync(argAfter(call.args, '--images-dir'), { recursive: true });
      return result;
    };
    const outcome = await dumpApp(context, APP_PID, { mode: 'exit', reason: 'signal' }, criu.ports);
    expect(outcome.ok).toBe(false);
    expect(criu.signals).toEqual([{ pid: APP_PID, signal: 'SIGCONT', committed: false }]);
    expect(existsSync(join(dir, 'current'))).toBe(false);
    expect(listing(dir).filter((name) => name !== FAILED_DUMP_LOG)).toEqual([]);
  });
});
