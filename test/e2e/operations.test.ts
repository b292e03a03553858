import { execFile } from 'node:child_process';
import { readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { counts, type Container } from '../helpers/container.js';
import { useLab } from '../helpers/lab.js';
import { BASE_ENV, STASIS_BIN, fixture, poll, stasisCheckpoint } from '../helpers/stasis.js';

const COUNTER = [fixture('counter.sh')];
const lab = useLab('stasis-ops-');

interface Setup {
  readonly dir: string;
  readonly socket: string;
  readonly env: Record<string, string>;
}

function setup(extra: Record<string, string> = {}): Setup {
  const base = lab.tempDir();
  const dir = join(base, 'checkpoints');
  const socket = join(base, 'control.sock');
  return { dir, socket, env: { STASIS_DIR: dir, STASIS_SOCKET: socket, ...extra } };
}

function container(env: Record<string, string>, command = COUNTER): Container {
  return lab.container(command, env);
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const generations = (dir: string): string[] => readdirSync(dir).filter((name) => name.startsWith('gen-')).sort();
const committed = (c: Container): number => c.events().filter((event) => event.msg === 'dump committed').length;

/** The client finds the socket through STASIS_SOCKET, as in a pod. */
const checkpoint = (socket: string, ...args: string[]) => stasisCheckpoint(args, { STASIS_SOCKET: socket });

/** exit 0, else the exit code or the signal that ended `file` */
function run(file: string, args: readonly string[]): Promise<{ status: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...BASE_ENV } }, (error, stdout, stderr) => resolve({ status: error === null ? 0 : (error.signal ?? error.code ?? 'error'), stdout, stderr }));
  });
}

function expectContinuous(numbers: readonly number[], first: number): void {
  expect(numbers[0]).toBe(first);
  numbers.forEach((n, i) => expect(n).toBe(first + i));
}

describe('stasis checkpoint (preStop)', () => {
  test('--continue commits a generation and the app keeps running; --exit commits and stasis exits 0; the next start restores', async () => {
    const { dir, socket, env } = setup();
    const c = container(env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    expect(statSync(socket).mode & 0o777).toBe(0o600);

    const first = await checkpoint(socket, '--continue');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^checkpoint committed: generation 1, [\d.]+ KiB, app frozen \d+ ms, took \d+ ms \(continue\)\n$/);
    const after = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= after + 3, 'ticks after the continue dump');

    const second = await checkpoint(socket, '--exit');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/generation 2, .*\(exit\)/);
    const result = await c.done;
    expect(result.code, result.raw).toBe(0);
    expect(generations(dir)).toEqual(['gen-000001', 'gen-000002']);

    const next = container(env);
    await next.waitForStdout((lines) => ticks(lines).length >= 2, 'restored ticks');
    expect((await next.waitForEvent('restored')).generation).toBe(2);
    expect(ticks(next.stdout())[0]).toBe((ticks(result.stdout).at(-1) ?? 0) + 1);
  });

  test('a preStop hook inside the container (its PID namespace dies with stasis) gets its answer and exits 0, 5 times in a row', async () => {
    for (let i = 0; i < 5; i++) {
      const { socket, env } = setup();
      const c = container(env);
      await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks');
      // as `kubectl exec` / a preStop exec hook runs it: in the container's PID and mount namespaces
      const hook = await run('nsenter', ['--target', String(await c.stasisPid()), '--pid', '--mount', STASIS_BIN, 'checkpoint', '--exit', '--socket', socket]);
      expect(hook.status, `run ${i + 1}: ${hook.stdout}${hook.stderr}`).toBe(0);
      expect(hook.stdout).toMatch(/^checkpoint committed: generation 1, .*\(exit\)\n$/);
      expect((await c.finished()).code).toBe(0);
    }
  });

  test('concurrent requests join one dump instead of starting two', async () => {
    const { dir, socket, env } = setup({ STASIS_AFTER_DUMP: 'continue' });
    const c = container(env);
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks');
    const answers = await Promise.all([checkpoint(socket), checkpoint(socket), checkpoint(socket)]);
    for (const answer of answers) expect(answer.code, answer.stderr).toBe(0);
    const numbers = new Set(answers.map((answer) => /generation (\d+)/.exec(answer.stdout)?.[1]));
    expect(numbers.size).toBeLessThanOrEqual(2);
    expect(generations(dir).length).toBe(numbers.size);
    expect(c.events().filter((event) => event.msg === 'dump started').length).toBe(numbers.size);
  });

  test('without a running stasis it fails with a clear message and exit 1', async () => {
    const { socket } = setup();
    const answer = await checkpoint(socket);
    expect(answer.code).toBe(1);
    expect(answer.stderr).toMatch(/cannot reach stasis at .*control\.sock/);
  });

  test.each(['0', 'soon', '-5s', '700h'])('--timeout %j: exit 2 naming the flag, the value and what is allowed', async (timeout) => {
    const { socket } = setup();
    const answer = await checkpoint(socket, '--timeout', timeout);
    expect(answer.code).toBe(2);
    expect(answer.stderr).toContain(`--timeout`);
    expect(answer.stderr).toContain(JSON.stringify(timeout).slice(1, -1));
    expect(answer.stderr).toMatch(/positive duration of at most 596h/);
  });

  test('a garbage request gets an error reply and stasis keeps running', async () => {
    const { socket, env } = setup({ STASIS_AFTER_DUMP: 'continue' });
    const c = container(env);
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks');
    const reply = await new Promise<string>((resolve) => {
      const client = connect(socket, () => client.write('this is not json\n'));
      let text = '';
      client.on('data', (chunk) => (text += chunk.toString()));
      client.on('end', () => resolve(text));
    });
    expect(JSON.parse(reply)).toEqual({ ok: false, error: 'bad request: not JSON' });
    const answer = await checkpoint(socket);
    expect(answer.code, answer.stderr).toBe(0);
  });
});

describe('SIGTERM', () => {
  test('STASIS_CHECKPOINT_ON_TERM=true: SIGTERM dumps first, then stasis exits 0, and the next start restores', async () => {
    const { dir, env } = setup({ STASIS_CHECKPOINT_ON_TERM: 'true' });
    const c = container(env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    await c.signal('SIGTERM');
    const result = await c.done;
    expect(result.code, result.raw).toBe(0);
    expect(generations(dir)).toEqual(['gen-000001']);
    const next = container(env);
    await next.waitForStdout((lines) => ticks(lines).length >= 1, 'restored ticks');
    expect(ticks(next.stdout())[0]).toBe((ticks(result.stdout).at(-1) ?? 0) + 1);
  });

  test('without it, SIGTERM reaches the app: exit 143 and no checkpoint', async () => {
    const { dir, env } = setup();
    const c = container(env);
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks');
    await c.signal('SIGTERM');
    const result = await c.done;
    expect(result.code, result.raw).toBe(143);
    expect(generations(dir)).toEqual([]);
  });

  test('when the dump on SIGTERM fails, SIGTERM is forwarded so the pod still stops', async () => {
    const { dir, env } = setup({ STASIS_CHECKPOINT_ON_TERM: 'true', STASIS_GHOST_LIMIT: '1M' });
    const c = container(env, [fixture('ghost-counter.sh')]);
    await c.waitForStdout((lines) => lines.includes('ghost open'), 'the ghost file');
    await c.signal('SIGTERM');
    const result = await c.done;
    expect(result.code, result.raw).toBe(143);
    expect(result.events.some((event) => event.msg === 'dump on SIGTERM failed; forwarding SIGTERM')).toBe(true);
    expect(generations(dir)).toEqual([]);
  });
});

describe('generations', () => {
  test('STASIS_INTERVAL makes a generation per tick with the app running, pruned to STASIS_KEEP', async () => {
    const { dir, env } = setup({ STASIS_INTERVAL: '1s', STASIS_KEEP: '2' });
    const c = container(env);
    await poll('4 interval dumps', () => (committed(c) >= 4 ? true : undefined), 30_000);
    const names = generations(dir);
    expect(names).toHaveLength(2);
    expect(readlinkSync(join(dir, 'current'))).toBe(names[1]);
    expect(c.events().filter((event) => event.msg === 'dump started').every((event) => event.reason === 'interval')).toBe(true);
    await c.signal('SIGTERM');
    const result = await c.done;
    expect(result.code).toBe(143);
    expectContinuous(ticks(result.stdout), 1);
  });

  test('when the newest generation is corrupt, the next older one is restored', async () => {
    const { dir, socket, env } = setup({ STASIS_KEEP: '3' });
    const c = container(env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
    expect((await checkpoint(socket, '--continue')).code).toBe(0);
    await c.waitForStdout((lines) => ticks(lines).length >= 8, 'more ticks');
    expect((await checkpoint(socket, '--exit')).code).toBe(0);
    expect((await c.done).code).toBe(0);
    writeFileSync(join(dir, 'gen-000002', 'pstree.img'), 'garbage');

    const next = container(env);
    await next.waitForStdout((lines) => ticks(lines).length >= 1, 'restored ticks');
    expect((await next.waitForEvent('restored')).generation).toBe(1);
    expect(ticks(next.stdout())[0]).toBeGreaterThan(1);
    expect(readdirSync(join(dir, 'quarantine'))[0]).toMatch(/^gen-000002\./);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
  });
});
