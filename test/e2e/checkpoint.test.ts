import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, chmodSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { counts, type Container } from '../helpers/container.js';
import { useLab } from '../helpers/lab.js';
import { fixture } from '../helpers/stasis.js';

const COUNTER = [fixture('counter.sh')];
const lab = useLab('stasis-ck-');
const container = (command: readonly string[], env: Record<string, string>): Container => lab.container(command, env);
const checkpointDir = (): string => join(lab.tempDir(), 'checkpoints');

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const errs = (lines: readonly string[]): number[] => counts(lines, 'err');

/** Runs the counter until `minTicks`, dumps it in exit mode, and returns what it printed. */
async function dumpInExitMode(dir: string, command = COUNTER, minTicks = 5) {
  const c = container(command, { STASIS_DIR: dir });
  await c.waitForStdout((lines) => ticks(lines).length >= minTicks, `${minTicks} ticks`);
  await c.signal('SIGUSR2');
  const result = await c.done;
  expect(result.code, result.raw).toBe(0);
  expect(result.events.some((event) => event.msg === 'dump committed'), result.raw).toBe(true);
  return result;
}

function expectContinuation(previous: readonly number[], next: readonly number[]): void {
  expect(next.length).toBeGreaterThan(0);
  expect(next[0]).toBe((previous.at(-1) ?? 0) + 1);
  next.forEach((n, i) => expect(n).toBe((next[0] ?? 0) + i));
}

describe('migration between containers', () => {
  test('dump on USR2 in container 1, restore in container 2 and again in 3: output continues on the new pipes', async () => {
    const dir = checkpointDir();
    const first = await dumpInExitMode(dir);
    const lastTick = ticks(first.stdout);
    const lastErr = errs(first.stderr);
    expectContinuation([0], lastTick);

    const second = container(COUNTER, { STASIS_DIR: dir });
    await second.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks in container 2');
    const restored = await second.waitForEvent('restored');
    expect(restored, second.events().map((e) => e.msg).join(',')).toBeDefined();
    expect(restored?.generation).toBe(1);
    expect(second.event('app started')).toBeUndefined();
    await second.signal('SIGUSR2');
    const secondResult = await second.done;
    expect(secondResult.code, secondResult.raw).toBe(0);
    expectContinuation(lastTick, ticks(secondResult.stdout));
    expectContinuation(lastErr, errs(secondResult.stderr));

    const third = container(COUNTER, { STASIS_DIR: dir });
    await third.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks in container 3');
    expect((await third.waitForEvent('restored')).generation).toBe(2);
    await third.signal('SIGTERM');
    const thirdResult = await third.done;
    expect(thirdResult.code, thirdResult.raw).toBe(143);
    expectContinuation(ticks(secondResult.stdout), ticks(thirdResult.stdout));
    expectContinuation(errs(secondResult.stderr), errs(thirdResult.stderr));
  });

  test('a generation is committed with metadata, owner-only files and a current link', async () => {
    const dir = checkpointDir();
    await dumpInExitMode(dir);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
    const gen = join(dir, 'gen-000001');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(gen).mode & 0o777).toBe(0o700);
    for (const name of readdirSync(gen)) expect(statSync(join(gen, name)).mode & 0o777, name).toBe(0o600);
    const metadata = JSON.parse(readFileSync(join(gen, 'stasis.json'), 'utf8'));
    expect(metadata.format).toBe(1);
    expect(metadata.argv).toEqual(COUNTER);
    expect(metadata.appPid).toBeGreaterThanOrEqual(10000);
    expect(metadata.stdio.map((fd: { kind: string }) => fd.kind)).toEqual(['pipe', 'pipe', 'pipe']);
    expect(metadata.stdio[1].inheritKey).toMatch(/^pipe:\[\d+\]$/);
    expect(metadata.dump.bytes).toBeGreaterThan(0);
    expect(metadata.dump.stats.frozen_time_us).toBeGreaterThan(0);
    expect(readdirSync(dir).filter((name) => name.startsWith('.incoming'))).toEqual([]);
  });
});

describe('continue mode', () => {
  test('STASIS_AFTER_DUMP=continue: the app keeps running after each dump, signals sent during a dump arrive after it', async () => {
    const dir = checkpointDir();
    const c = container(COUNTER, { STASIS_DIR: dir, STASIS_AFTER_DUMP: 'continue', STASIS_KEEP: '2' });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    await c.signal('SIGUSR2');
    await c.signal('SIGHUP');
    await c.waitForEvent('dump committed');
    const atDump = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => lines.includes('got HUP'), 'HUP after the dump');
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= atDump + 5, 'ticks after the dump');
    for (let i = 0; i < 2; i++) {
      const before = c.events().filter((event) => event.msg === 'dump committed').length;
      await c.signal('SIGUSR2');
      await poll(() => c.events().filter((event) => event.msg === 'dump committed').length > before);
    }
    expect(readdirSync(dir).filter((name) => name.startsWith('gen-')).sort()).toEqual(['gen-000002', 'gen-000003']);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000003');
    await c.signal('SIGTERM');
    const result = await c.done;
    expect(result.code, result.raw).toBe(143);
    expectContinuation([0], ticks(result.stdout));
  });
});

describe('restore failures and foreign checkpoints', () => {
  test('a corrupt generation is quarantined with its restore log and the app starts fresh', async () => {
    const dir = checkpointDir();
    await dumpInExitMode(dir);
    // Same size, other bytes: passes stasis's size check, so criu itself must fail on it.
    const core = join(dir, 'gen-000001', 'core-10000.img');
    writeFileSync(core, Buffer.alloc(statSync(core).size, 0x5a));

    const c = container(COUNTER, { STASIS_DIR: dir });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'fresh ticks');
    expect(ticks(c.stdout())[0]).toBe(1);
    const failed = c.event('restore failed; trying an older generation or a fresh start');
    expect(failed?.criu_errors, c.events().map((e) => e.msg).join(',')).toBeDefined();
    expect((failed?.criu_errors as string[]).join('\n')).not.toMatch(/RLIMIT_NOFILE/);
    const quarantined = readdirSync(join(dir, 'quarantine'));
    expect(quarantined).toHaveLength(1);
    expect(quarantined[0]).toMatch(/^gen-000001\./);
    const where = join(dir, 'quarantine', quarantined[0] as string);
    expect(readdirSync(where)).toEqual(expect.arrayContaining(['restore.log', 'quarantine-reason.txt']));
    expect(readdirSync(dir).filter((name) => name.startsWith('gen-'))).toEqual([]);
    await c.signal('SIGTERM');
    expect((await c.done).code).toBe(143);
  });

  test('a truncated image is caught by its recorded size before criu runs, quarantined, and the app starts fresh', async () => {
    const dir = checkpointDir();
    await dumpInExitMode(dir);
    const gen = join(dir, 'gen-000001');
    const pages = readdirSync(gen).find((name) => name.startsWith('pages-'));
    expect(pages).toBeDefined();
    truncateSync(join(gen, pages as string), 4096);
    const c = container(COUNTER, { STASIS_DIR: dir });
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks');
    expect(ticks(c.stdout())[0]).toBe(1);
    expect(String(c.event('checkpoint unusable, quarantined')?.reason)).toMatch(/truncated or changed since the dump\): pages-\d+\.img is 4096 bytes/);
    expect(c.event('restore started')).toBeUndefined();
    expect(readdirSync(join(dir, 'quarantine'))).toHaveLength(1);
  });

  test('STASIS_ON_RESTORE_FAILURE=exit: a failed restore exits 3 without starting the app', async () => {
    const dir = checkpointDir();
    await dumpInExitMode(dir);
    writeFileSync(join(dir, 'gen-000001', 'core-10000.img'), 'garbage');
    const c = container(COUNTER, { STASIS_DIR: dir, STASIS_ON_RESTORE_FAILURE: 'exit' });
    const result = await c.done;
    expect(result.code, result.raw).toBe(3);
    expect(result.stdout).toEqual([]);
    expect(result.events.some((event) => event.msg === 'app started')).toBe(false);
  });

  test('a checkpoint of another command line is ignored, not restored and not deleted', async () => {
    const dir = checkpointDir();
    await dumpInExitMode(dir);
    const other = [fixture('counter.sh'), '1000'];
    const c = container(other, { STASIS_DIR: dir });
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks of the other command');
    expect(ticks(c.stdout())[0]).toBe(1001);
    expect(c.event('checkpoint ignored')).toBeDefined();
    expect(readdirSync(dir)).toContain('gen-000001');
    await c.signal('SIGTERM');
    expect((await c.done).code).toBe(143);
  });

  test('an empty or missing checkpoint directory just starts fresh', async () => {
    const dir = checkpointDir();
    const c = container(COUNTER, { STASIS_DIR: dir });
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks');
    expect(ticks(c.stdout())[0]).toBe(1);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await c.signal('SIGTERM');
    expect((await c.done).code).toBe(143);
  });

  test('a checkpoint directory writable by others is refused: checkpoints off, the app runs', async () => {
    const dir = checkpointDir();
    await dumpInExitMode(dir);
    chmodSync(dir, 0o777);
    const c = container(COUNTER, { STASIS_DIR: dir });
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks');
    expect(ticks(c.stdout())[0]).toBe(1);
    expect(String(c.event('checkpoints are off: checkpoint directory refused')?.reason)).toMatch(/writable by group or others/);
    await c.signal('SIGTERM');
    expect((await c.done).code).toBe(143);
  });
});

describe('failed dumps', () => {
  test('a dump criu cannot do leaves the app running and the previous generation intact', async () => {
    const dir = checkpointDir();
    const c = container([fixture('ghost-counter.sh')], { STASIS_DIR: dir, STASIS_AFTER_DUMP: 'exit', STASIS_GHOST_LIMIT: '1M' });
    await c.waitForStdout((lines) => lines.includes('ghost open'), 'the ghost file');
    await c.signal('SIGUSR2');
    const failed = await c.waitForEvent('dump failed; the app keeps running');
    expect((failed.criu_errors as string[]).join('\n')).toMatch(/ghost/i);
    const atFailure = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= atFailure + 5, 'ticks after the failed dump');
    expect(readdirSync(dir).filter((name) => name.startsWith('gen-') || name.startsWith('.incoming'))).toEqual([]);
    await c.signal('SIGTERM');
    const result = await c.done;
    expect(result.code, result.raw).toBe(143);
    expectContinuation([0], ticks(result.stdout));
  });

  test('after a failed dump the earlier generation is still current and restorable', async () => {
    const dir = checkpointDir();
    const c = container([fixture('ghost-counter.sh')], { STASIS_DIR: dir, STASIS_AFTER_DUMP: 'continue', STASIS_GHOST_LIMIT: '1M' });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    await c.signal('SIGUSR2');
    await c.waitForEvent('dump committed');
    await c.waitForStdout((lines) => lines.includes('ghost open'), 'the ghost file');
    await c.signal('SIGUSR2');
    await c.waitForEvent('dump failed; the app keeps running');
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
    expect(readdirSync(dir).filter((name) => name.startsWith('gen-'))).toEqual(['gen-000001']);
    await c.signal('SIGTERM');
    const first = await c.done;
    expect(first.code).toBe(143);

    const next = container([fixture('ghost-counter.sh')], { STASIS_DIR: dir, STASIS_GHOST_LIMIT: '1M' });
    await next.waitForStdout((lines) => ticks(lines).length >= 1, 'ticks after the restore');
    expect((await next.waitForEvent('restored')).generation).toBe(1);
    expect(ticks(next.stdout())[0]).toBeLessThan(ticks(first.stdout).at(-1) ?? 0);
    await next.signal('SIGTERM');
    expect((await next.done).code).toBe(143);
  });
});

async function poll(check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
