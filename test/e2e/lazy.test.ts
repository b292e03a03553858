/**
 * STASIS_LAZY: real criu dumps, restores with --lazy-pages and a real lazy-pages
 * daemon, stasis as PID 1 of new PID namespaces with real pipes. The app holds a
 * large heap of random bytes and prints its sha256, so "same memory" is checked
 * byte for byte; it keeps reading and writing memory while pages come in.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { counts, CRIU, type Container } from '../helpers/container.js';
import type { CapturedResult } from '../helpers/captured.js';
import { useLab } from '../helpers/lab.js';
import { BASE_ENV, childrenOf, fixture, poll, ROOT, STASIS_BIN, type LogEvent } from '../helpers/stasis.js';

const lab = useLab('stasis-lazy-');
const WRAPPER = fixture('criu-lazy-wrapper.sh');
/** Big enough that serving it takes a while, small enough for a busy 2-core machine. */
const BIG_MIB = '384';
const SMALL_MIB = '64';
const app = (mib: string): string[] => [fixture('lazy-heap.py'), mib];
/** Generous: other test suites share these 2 cores. */
const SLOW = 120_000;

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const sums = (lines: readonly string[]): string[] => lines.filter((line) => line.startsWith('sum ')).map((line) => line.slice(4));
const checkpointDir = (): string => join(lab.tempDir(), 'checkpoints');

/** Fresh start, the first checksum, a few ticks, then a dump in exit mode: returns the checksum and the last tick. */
async function firstDump(dir: string, mib: string): Promise<{ sum: string; lastTick: number }> {
  const c = lab.container(app(mib), { STASIS_DIR: dir });
  await c.waitForStdout((lines) => ticks(lines).length >= 5, 'the heap filled and 5 ticks', SLOW);
  await c.signal('SIGUSR2');
  const result = await c.finished(SLOW);
  expect(result.code, result.raw).toBe(0);
  expect(result.events.some((event) => event.msg === 'dump committed'), result.raw).toBe(true);
  const [sum] = sums(result.stdout);
  expect(sum).toMatch(/^[0-9a-f]{64}$/);
  return { sum: sum as string, lastTick: ticks(result.stdout).at(-1) ?? 0 };
}

async function waitForSum(c: Container, count: number): Promise<string> {
  await c.waitForStdout((lines) => sums(lines).length >= count, `checksum line ${count}`, SLOW);
  return sums(c.stdout())[count - 1] as string;
}

/**
 * Asks the app for the checksum of its memory (it must be the dumped one), waits for the
 * tick the app prints right after it (on a busy machine the app can be preempted between
 * the two lines, and the callers check where the count resumed), then ends it with
 * SIGTERM: exit 143.
 */
async function sameMemoryThenTerm(c: Container, sum: string): Promise<CapturedResult> {
  await c.signal('SIGUSR1');
  expect(await waitForSum(c, 1)).toBe(sum);
  await c.waitForStdout((lines) => ticks(lines.slice(lines.findIndex((line) => line.startsWith('sum ')))).length > 0, 'a tick after the checksum', SLOW);
  await c.signal('SIGTERM');
  const result = await c.finished(SLOW);
  expect(result.code, result.raw).toBe(143);
  return result;
}

function expectContinuation(lastTick: number, next: readonly number[]): void {
  expect(next.length).toBeGreaterThan(0);
  expect(next[0]).toBe(lastTick + 1);
  next.forEach((n, i) => expect(n).toBe((next[0] ?? 0) + i));
}

const at = (event: LogEvent | undefined): number => Number(event?.time);

/** Host PID of the lazy-pages daemon below stasis, once there. */
async function daemonPid(c: Container): Promise<number> {
  const stasis = await c.stasisPid();
  return poll('the lazy-pages daemon', () =>
    childrenOf(stasis).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('lazy-pages');
      } catch {
        return false;
      }
    }),
  );
}

/**
 * A lazy restore of the big app whose daemon the wrapper stops (SIGSTOP) the moment
 * criu restore returns: the app runs while pages are still missing.
 */
async function restoredWithStoppedDaemon(): Promise<{ dir: string; c: Container; daemon: number }> {
  const dir = checkpointDir();
  await firstDump(dir, BIG_MIB);
  const c = lab.container(app(BIG_MIB), { STASIS_DIR: dir, STASIS_LAZY: 'true', STASIS_CRIU: WRAPPER, LAZY_TEST_REAL_CRIU: CRIU, LAZY_TEST_STOP_DAEMON: '1' });
  await c.waitForEvent('lazy-pages daemon started', SLOW);
  const daemon = await daemonPid(c);
  await c.waitForEvent('restored', SLOW);
  await poll('the daemon stopped', () => (/^State:\s*T/m.test(readFileSync(`/proc/${daemon}/status`, 'utf8')) ? true : undefined));
  return { dir, c, daemon };
}

describe('lazy restore', () => {
  test('same memory byte for byte under load, output on the new pipes, a dump waits for the last page, signals and exit code pass through; the new images restore eagerly', async () => {
    const dir = checkpointDir();
    const first = await firstDump(dir, BIG_MIB);

    // Container 2: lazy. The checksum pass and a dump request come while pages are still being copied in.
    const c = lab.container(app(BIG_MIB), { STASIS_DIR: dir, STASIS_LAZY: 'true', STASIS_AFTER_DUMP: 'continue' });
    const restored = await c.waitForEvent('restored', SLOW);
    await c.signal('SIGUSR1');
    await c.signal('SIGUSR2');
    expect(restored.generation).toBe(1);
    expect(restored.lazy).toBe(true);
    expect(c.event('lazy-pages daemon started')?.generation).toBe(1);
    expect(c.event('app started')).toBeUndefined();
    expect(await waitForSum(c, 1)).toBe(first.sum);
    const complete = await c.waitForEvent('lazy restore complete: every page is in', SLOW);
    expect(complete.generation).toBe(1);
    expect(Number(complete.duration_ms)).toBeGreaterThan(0);
    expect(Number(complete.bytes)).toBeGreaterThan(Number(BIG_MIB) << 20);
    const committed = await c.waitForEvent('dump committed', SLOW);
    // never a half-lazy dump: it starts only after the last page is in
    expect(at(c.event('dump started'))).toBeGreaterThanOrEqual(at(complete));
    const requested = c.events().find((event) => event.msg === 'signal handled by stasis' && event.signal === 'SIGUSR2');
    if (at(requested) < at(complete)) expect(c.event('dump waits until the lazy restore has copied every page in')).toBeDefined();
    expect(committed.generation).toBe(2);
    // the daemon's socket is gone, its log is kept, the restore is no longer "unfinished"
    const gen1 = readdirSync(join(dir, 'gen-000001'));
    expect(gen1).toContain('lazy-pages.log');
    expect(gen1).not.toContain('lazy-pages.socket');
    expect(gen1).not.toContain('restore-attempt');
    // `stasis status` reads it from last-restore.json
    expect(JSON.parse(readFileSync(join(dir, 'last-restore.json'), 'utf8'))).toMatchObject({ outcome: 'restored', generation: 1, lazy: true });
    // after the daemon: still the same memory, still working, signals and the exit code pass through
    await c.signal('SIGUSR1');
    expect(await waitForSum(c, 2)).toBe(first.sum);
    const afterDump = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= afterDump + 10, 'ticks after the dump', SLOW);
    await c.signal('SIGHUP');
    await c.waitForStdout((lines) => lines.includes('got HUP'), 'HUP forwarded');
    await c.signal('SIGINT');
    const second = await c.finished(SLOW);
    expect(second.code, second.raw).toBe(7);
    expect(second.stdout.filter((line) => line.startsWith('CORRUPT'))).toEqual([]);
    expectContinuation(first.lastTick, ticks(second.stdout));
    expect(second.events.filter((event) => event.level >= 50)).toEqual([]);

    // Container 3: the generation dumped from the lazily restored app, restored eagerly.
    const third = lab.container(app(BIG_MIB), { STASIS_DIR: dir });
    const eager = await third.waitForEvent('restored', SLOW);
    expect(eager.generation).toBe(2);
    expect(eager.lazy).toBe(false);
    expect(third.event('lazy-pages daemon started')).toBeUndefined();
    const thirdResult = await sameMemoryThenTerm(third, first.sum);
    expect(thirdResult.stdout.filter((line) => line.startsWith('CORRUPT'))).toEqual([]);
    // it continues from the dump taken in container 2 (generation 2, above). Container 2 may
    // not have printed a tick before that dump froze it (the restore and the page copy can
    // take less than one tick), so the count resumes at first.lastTick + 1 or later.
    const resumed = ticks(thirdResult.stdout)[0] ?? 0;
    expect(resumed).toBeGreaterThan(first.lastTick);
    expect(resumed).toBeLessThanOrEqual(ticks(second.stdout).at(-1) ?? 0);
  }, 600_000);

  test('a dump requested while criu is still restoring waits for the last page too; exit mode ends with 0 and the new generation has the same memory', async () => {
    const dir = checkpointDir();
    const first = await firstDump(dir, SMALL_MIB);
    const env = { STASIS_DIR: dir, STASIS_CRIU: WRAPPER, LAZY_TEST_REAL_CRIU: CRIU };
    const c = lab.container(app(SMALL_MIB), { ...env, STASIS_LAZY: 'true', LAZY_TEST_RESTORE_DELAY: '2' });
    await c.waitForEvent('lazy-pages daemon started', SLOW);
    await c.signal('SIGUSR2');
    const result = await c.finished(SLOW);
    expect(result.code, result.raw).toBe(0);
    const event = (msg: string): LogEvent | undefined => result.events.find((e) => e.msg === msg);
    expect(event('restored')?.lazy).toBe(true);
    expect(at(event('dump started'))).toBeGreaterThanOrEqual(at(event('lazy restore complete: every page is in')));
    expect(event('dump committed')?.generation).toBe(2);

    const next = lab.container(app(SMALL_MIB), env);
    expect((await next.waitForEvent('restored', SLOW)).generation).toBe(2);
    await sameMemoryThenTerm(next, first.sum);
  }, 300_000);

  test('without userfaultfd (criu check fails) it restores eagerly and says why; doctor warns', async () => {
    const dir = checkpointDir();
    const first = await firstDump(dir, SMALL_MIB);
    const env = { STASIS_DIR: dir, STASIS_LAZY: 'true', STASIS_CRIU: WRAPPER, LAZY_TEST_REAL_CRIU: CRIU, LAZY_TEST_NO_UFFD: '1' };
    const c = lab.container(app(SMALL_MIB), env);
    const restored = await c.waitForEvent('restored', SLOW);
    expect(restored.lazy).toBe(false);
    const fallback = c.event('lazy restore unavailable; restoring eagerly');
    expect(fallback?.level).toBe(40);
    expect(String(fallback?.reason)).toMatch(/uffd-noncoop failed \(exit 1\): UFFD is not supported \(test wrapper\)/);
    expect(c.event('lazy-pages daemon started')).toBeUndefined();
    const result = await sameMemoryThenTerm(c, first.sum);
    expectContinuation(first.lastTick, ticks(result.stdout));
    expect(readdirSync(join(dir, 'gen-000001'))).not.toContain('lazy-pages.socket');

    const doctor = await promisify(execFile)(STASIS_BIN, ['doctor', '--json'], { cwd: ROOT, env: { ...BASE_ENV, ...env, STASIS_DIR: dir } }).catch(
      (error: { stdout: string }) => error,
    );
    const check = (JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find((entry) => entry.name === 'lazy pages');
    expect(check?.status).toBe('warn');
    expect(check?.detail).toMatch(/UFFD is not supported.*STASIS_LAZY=true falls back to normal restores/);
  }, 300_000);

  test('a lazy restore criu cannot finish (the daemon gone before criu connects) is retried eagerly', async () => {
    const dir = checkpointDir();
    const first = await firstDump(dir, SMALL_MIB);
    const c = lab.container(app(SMALL_MIB), { STASIS_DIR: dir, STASIS_LAZY: 'true', STASIS_CRIU: WRAPPER, LAZY_TEST_REAL_CRIU: CRIU, LAZY_TEST_RESTORE_DELAY: '3' });
    await c.waitForEvent('lazy-pages daemon started', SLOW);
    process.kill(await daemonPid(c), 'SIGKILL');
    const restored = await c.waitForEvent('restored', SLOW);
    expect(restored.lazy).toBe(false);
    expect((c.event('lazy restore failed; restoring the same generation eagerly')?.criu_errors as string[]).length).toBeGreaterThan(0);
    await sameMemoryThenTerm(c, first.sum);
  }, 300_000);

  test('the daemon dying while the app still misses pages: stasis kills the app and says why, the generation is kept', async () => {
    const { dir, c, daemon } = await restoredWithStoppedDaemon();
    expect(c.event('lazy restore complete: every page is in')).toBeUndefined();
    process.kill(daemon, 'SIGKILL');
    const result = await c.finished(SLOW);
    const failed = result.events.find((event) => event.msg.startsWith('lazy restore failed: the lazy-pages daemon ended before every page was in'));
    expect(failed?.level, result.raw).toBe(50);
    expect(failed?.signal).toBe('SIGKILL');
    // killed by stasis (137), or crashed on a zeroed page first: never a normal end
    expect(result.code, result.raw).toBeGreaterThan(128);
    expect(result.events.find((event) => event.msg === 'lazy restore complete: every page is in')).toBeUndefined();
    // not quarantined at once (the images may be fine), but the unfinished restore is on record
    expect(readdirSync(dir)).toContain('gen-000001');
    expect(existsSync(join(dir, 'gen-000001', 'restore-attempt'))).toBe(true);
    expect(readdirSync(join(dir, 'gen-000001'))).not.toContain('lazy-pages.socket');
  }, 300_000);

  test('SIGTERM while pages are still missing: forwarded to the app, exit 143, and stasis stops the daemon on its way out', async () => {
    const { dir, c } = await restoredWithStoppedDaemon();
    await c.signal('SIGTERM');
    const result = await c.finished(SLOW);
    expect(result.code, result.raw).toBe(143);
    const msgs = result.events.map((event) => event.msg);
    expect(msgs).toContain('lazy-pages daemon stopped: stasis is exiting');
    expect(msgs.indexOf('lazy-pages daemon stopped: stasis is exiting')).toBeLessThan(msgs.indexOf('exiting'));
    expect(result.events.filter((event) => event.level >= 50)).toEqual([]);
    // the restore itself worked: not counted as unfinished (which would quarantine the generation)
    expect(readdirSync(join(dir, 'gen-000001'))).not.toContain('restore-attempt');
    expect(readdirSync(join(dir, 'gen-000001'))).not.toContain('lazy-pages.socket');
  }, 300_000);
});
