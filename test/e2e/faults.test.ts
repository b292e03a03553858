/**
 * Faults and bad input (issue 7): every failure is survived with a clear message
 * and no checkpoint is lost. Real criu, real PID namespaces, real pipes.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { OPTIONS } from '../../src/config.js';
import { CRIU, Container, type ContainerOptions, counts, fdCount, missingCriu, zombieChildren } from '../helpers/container.js';
import type { CapturedResult } from '../helpers/captured.js';
import { childrenOf, stasisCheckpoint, fixture, mapLimit, poll, runStasis, sleep, statOf, type LogEvent } from '../helpers/stasis.js';

// Other suites share the 2 cores and the disk: waits and tests get room for a slow moment.
const WAIT = 60_000;
vi.setConfig({ testTimeout: 240_000, hookTimeout: 120_000 });

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const COUNTER = [fixture('counter.sh')];
/** A python counter holding `mb` MiB of random bytes (SIGHUP adds `grow` MiB). */
const big = (mb: number, grow = 40): string[] => [PYTHON, fixture('big-counter.py'), String(mb), String(grow)];

const running: Container[] = [];
const cleanups: (() => void)[] = [];

beforeAll(() => {
  const missing = missingCriu();
  if (missing) throw new Error(missing);
});

afterEach(async () => {
  for (const container of running.splice(0)) await container.kill();
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

interface Setup {
  readonly base: string;
  readonly dir: string;
  readonly socket: string;
  readonly env: Record<string, string>;
}

function setup(extra: Record<string, string> = {}, dir?: string): Setup {
  const base = mkdtempSync(join(tmpdir(), 'stasis-faults-'));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  const checkpoints = dir ?? join(base, 'checkpoints');
  const socket = join(base, 'control.sock');
  return { base, dir: checkpoints, socket, env: { STASIS_DIR: checkpoints, STASIS_SOCKET: socket, ...extra } };
}

function container(command: readonly string[], env: Record<string, string>, options: ContainerOptions = {}): Container {
  const started = new Container(command, env, options);
  running.push(started);
  return started;
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const lastTick = (c: Container): number => ticks(c.stdout()).at(-1) ?? 0;
const generations = (dir: string): string[] => readdirSync(dir).filter((name) => name.startsWith('gen-')).sort();
const incoming = (dir: string): string[] => readdirSync(dir).filter((name) => name.startsWith('.incoming-'));
const named = (events: readonly LogEvent[], msg: string): LogEvent[] => events.filter((event) => event.msg === msg);
const countOf = (c: Container, msg: string): number => named(c.events(), msg).length;

function expectContinuous(numbers: readonly number[]): void {
  expect(numbers.length).toBeGreaterThan(0);
  numbers.forEach((n, i) => expect(n).toBe((numbers[0] ?? 0) + i));
}

/** Runs `app` in a first container until 3 ticks, then dumps it with SIGUSR2 (exit mode): its committed result. */
async function dumpedOnce(app: readonly string[], env: Record<string, string>): Promise<CapturedResult> {
  const first = container(app, env);
  await first.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
  await first.signal('SIGUSR2');
  const dumped = await first.finished();
  expect(dumped.code, dumped.raw).toBe(0);
  return dumped;
}

const checkpoint = (socket: string, ...args: string[]) => stasisCheckpoint(['--socket', socket, ...args]);

/** Waits for the next "dump committed" (or failed) after `before` of them. */
async function nextDumpEnd(c: Container, before: number, ms = 60_000): Promise<LogEvent> {
  return poll(
    `dump number ${before + 1} to end; stderr ${c.events().slice(-5).map((e) => e.msg).join(' | ')}`,
    () => c.events().filter((event) => event.msg === 'dump committed' || event.msg.startsWith('dump failed'))[before],
    ms,
  );
}

/** Host PID of the app: the child of stasis whose command name is `comm`. */
async function appPid(c: Container, comm: string): Promise<number> {
  const stasis = await c.stasisPid();
  return poll(`a child of stasis named ${comm}`, () => childrenOf(stasis).find((pid) => statOf(pid)?.comm === comm));
}

/** Resolves with the .incoming-* folder once criu has written `bytes` of pages into it. */
async function halfWritten(dir: string, bytes: number): Promise<string> {
  return poll(
    `criu writing pages into ${dir}/.incoming-*`,
    () => {
      for (const name of incoming(dir)) {
        try {
          const pages = readdirSync(join(dir, name)).filter((file) => file.startsWith('pages-'));
          const size = pages.reduce((sum, file) => sum + statSync(join(dir, name, file)).size, 0);
          if (size >= bytes) return name;
        } catch {
          // renamed or removed meanwhile
        }
      }
      return undefined;
    },
    60_000,
  );
}

/**
 * A criu for fault tests: runs the real one, with python lines run before and after it
 * when the command is `when`. (python waits for criu's PID only; a shell's wait would
 * also reap the processes criu restored, which are the wrapper's children.)
 */
function wrappedCriu(base: string, when: 'dump' | 'restore', lines: { readonly before?: readonly string[]; readonly after?: readonly string[] }): string {
  const block = (code: readonly string[] = []): string => [`if sys.argv[1:2] == ['${when}']:`, ...code.map((line) => `    ${line}`), '    pass'].join('\n');
  const script = [
    'import os, signal, subprocess, sys, time',
    block(lines.before),
    `rc = subprocess.run([${JSON.stringify(CRIU)}] + sys.argv[1:]).returncode`,
    block(lines.after),
    'sys.exit(rc)',
  ].join('\n');
  const path = join(base, `criu-${when}-wrapper`);
  writeFileSync(path, `#!${PYTHON}\n${script}\n`, { mode: 0o755 });
  return path;
}

describe('interrupted and failing dumps', () => {
  test('stasis SIGKILLed in the middle of a dump: the next start restores the previous generation and removes the half-written one', async () => {
    const { dir, env } = setup({ STASIS_AFTER_DUMP: 'continue' });
    const app = big(200);
    const c = container(app, env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks of the 200 MiB app', WAIT);
    await c.signal('SIGUSR2');
    await nextDumpEnd(c, 0);
    expect(countOf(c, 'dump committed'), c.events().map((e) => e.msg).join(',')).toBe(1);
    const atFirstDump = lastTick(c);
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= atFirstDump + 5, 'ticks after the first dump', WAIT);

    await c.signal('SIGUSR2');
    const partial = await halfWritten(dir, 16 << 20);
    process.kill(await c.stasisPid(), 'SIGKILL');
    const first = await c.finished();
    expect(first.code).not.toBe(0);
    expect(named(first.events, 'dump committed')).toHaveLength(1);
    expect(incoming(dir)).toEqual([partial]);
    expect(generations(dir)).toEqual(['gen-000001']);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');

    const next = container(app, env);
    await next.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore', WAIT);
    expect((await next.waitForEvent('restored', WAIT)).generation).toBe(1);
    expect(next.event('app started')).toBeUndefined();
    const restored = ticks(next.stdout());
    // gen 1 was taken at or before the tick seen when its commit was logged
    expect(restored[0]).toBeGreaterThan(1);
    expect(restored[0]).toBeLessThanOrEqual(atFirstDump + 1);
    expectContinuous(restored);
    expect(incoming(dir)).toEqual([]);
    await next.signal('SIGTERM');
    expect((await next.finished()).code).toBe(143);
  });

  test.each(['continue', 'exit'] as const)('a criu dump that never ends (%s mode) is killed after STASIS_CRIU_TIMEOUT: the app runs on, nothing is committed', async (mode) => {
    const { base, dir, env } = setup({ STASIS_AFTER_DUMP: mode, STASIS_CRIU_TIMEOUT: '2s' });
    const c = container(COUNTER, { ...env, STASIS_CRIU: wrappedCriu(base, 'dump', { before: ['time.sleep(600)'] }) });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    await c.signal('SIGUSR2');
    const failed = await c.waitForEvent('dump failed; the app keeps running', WAIT);
    expect(String(failed.error)).toMatch(/criu did not finish within 2s \(STASIS_CRIU_TIMEOUT\) and was killed/);
    const at = lastTick(c);
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 5, 'ticks after the killed dump', WAIT);
    expect(generations(dir)).toEqual([]);
    expect(incoming(dir)).toEqual([]);
    await c.signal('SIGTERM');
    const result = await c.finished();
    expect(result.code, result.raw).toBe(143);
    expectContinuous(ticks(result.stdout));
  });

  describe.each(['continue', 'exit'] as const)('the checkpoint volume fills up during a dump (STASIS_AFTER_DUMP=%s)', (mode) => {
    test('the dump fails saying the volume is full, the app keeps running, stasis stays, the previous generation is intact', async () => {
      const mount = mkdtempSync(join(tmpdir(), 'stasis-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', mount]);
      cleanups.push(() => rmSync(mount, { recursive: true, force: true }));
      cleanups.push(() => execFileSync('umount', ['-l', mount]));
      const { dir, socket, env } = setup({ STASIS_AFTER_DUMP: mode }, join(mount, 'checkpoints'));
      const c = container(big(1, 48), env);
      await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
      const first = await checkpoint(socket, '--continue');
      expect(first.code, first.stderr).toBe(0);
      expect(generations(dir)).toEqual(['gen-000001']);
      const metadata = readFileSync(join(dir, 'gen-000001', 'stasis.json'), 'utf8');

      await c.signal('SIGHUP');
      await c.waitForStdout((lines) => lines.includes('grew'), 'the app to grow by 48 MiB', WAIT);
      await c.signal('SIGUSR2');
      const failed = await c.waitForEvent('dump failed; the app keeps running', WAIT);
      expect(String(failed.error)).toMatch(/checkpoint volume is full/);
      expect(String(failed.error)).toContain(dir);
      // criu's log is on the full volume too, so its lines may be cut short: stasis asks the volume
      expect((failed.criu_errors as string[]).length).toBeGreaterThan(0);

      const atFailure = lastTick(c);
      await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= atFailure + 5, 'ticks after the failed dump', WAIT);
      expect(c.child.exitCode).toBeNull();
      expect(generations(dir)).toEqual(['gen-000001']);
      expect(incoming(dir)).toEqual([]);
      expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
      expect(readFileSync(join(dir, 'gen-000001', 'stasis.json'), 'utf8')).toBe(metadata);

      const answer = await checkpoint(socket);
      expect(answer.code).toBe(1);
      expect(answer.stderr + answer.stdout).toMatch(/checkpoint volume is full/);
      await c.signal('SIGTERM');
      const result = await c.finished();
      expect(result.code, result.raw).toBe(143);
      expectContinuous(ticks(result.stdout));
    });
  });
});

describe('a read-only checkpoint volume', () => {
  test('a generation that must be quarantined cannot be moved: the app starts fresh; a dump fails saying the volume is read-only; stasis keeps running', async () => {
    const mount = mkdtempSync(join(tmpdir(), 'stasis-ro-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', mount]);
    cleanups.push(() => rmSync(mount, { recursive: true, force: true }));
    cleanups.push(() => execFileSync('umount', ['-l', mount]));
    const { dir, env } = setup({ STASIS_AFTER_DUMP: 'continue' }, join(mount, 'checkpoints'));
    await dumpedOnce(COUNTER, { ...env, STASIS_AFTER_DUMP: 'exit' });
    const meta = join(dir, 'gen-000001', 'stasis.json');
    writeFileSync(meta, JSON.stringify({ ...JSON.parse(readFileSync(meta, 'utf8')), format: 99 }));
    execFileSync('mount', ['-o', 'remount,ro', mount]);

    const c = container(COUNTER, env);
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks', WAIT);
    expect(ticks(c.stdout())[0]).toBe(1);
    expect(String(c.event('cannot use the checkpoints; starting fresh')?.reason)).toMatch(/read-only/);
    await c.signal('SIGUSR2');
    const failed = await c.waitForEvent('dump failed; the app keeps running', WAIT);
    expect(String(failed.error)).toMatch(/checkpoint volume is read-only/);
    const at = lastTick(c);
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 3, 'ticks after the failed dump', WAIT);
    expect(generations(dir)).toEqual(['gen-000001']);
    await c.signal('SIGTERM');
    const result = await c.finished();
    expect(result.code, result.raw).toBe(143);
  });
});

describe('unusable generations', () => {
  test('a truncated image, a missing stasis.json and a future stasis.json format are quarantined with the reason; the next older generation is restored', async () => {
    const { dir, socket, env } = setup({ STASIS_KEEP: '4' });
    const c = container(COUNTER, env);
    for (let i = 1; i <= 4; i++) {
      await c.waitForStdout((lines) => ticks(lines).length >= 3 * i, `ticks before dump ${i}`, WAIT);
      const answer = await checkpoint(socket, i < 4 ? '--continue' : '--exit');
      expect(answer.code, answer.stderr).toBe(0);
    }
    expect((await c.finished()).code).toBe(0);
    expect(generations(dir)).toEqual(['gen-000001', 'gen-000002', 'gen-000003', 'gen-000004']);

    const pages = readdirSync(join(dir, 'gen-000004')).filter((name) => name.startsWith('pages-'));
    for (const name of pages) truncateSync(join(dir, 'gen-000004', name), Math.floor(statSync(join(dir, 'gen-000004', name)).size / 2));
    const meta3 = join(dir, 'gen-000003', 'stasis.json');
    writeFileSync(meta3, JSON.stringify({ ...JSON.parse(readFileSync(meta3, 'utf8')), format: 99 }));
    unlinkSync(join(dir, 'gen-000002', 'stasis.json'));

    const next = container(COUNTER, env);
    await next.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks after the restore', WAIT);
    expect((await next.waitForEvent('restored', WAIT)).generation).toBe(1);
    expect(ticks(next.stdout())[0]).toBeGreaterThan(1);

    const unusable = named(next.events(), 'checkpoint unusable, quarantined');
    expect(unusable.map((event) => [event.generation, event.reason])).toEqual([
      [4, expect.stringMatching(/^images damaged \(truncated or changed since the dump\): pages-\d+\.img is \d+ bytes, expected \d+/)],
      [3, expect.stringMatching(/format 99; this stasis reads up to 1/)],
      [2, expect.stringMatching(/stasis\.json is missing/)],
    ]);
    // found before criu ran: criu 4.1 loops for ever on a truncated pages image
    expect(named(next.events(), 'restore started').map((event) => event.generation)).toEqual([1]);
    const reasons = Object.fromEntries(
      readdirSync(join(dir, 'quarantine')).map((name) => [name.slice(0, 10), readFileSync(join(dir, 'quarantine', name, 'quarantine-reason.txt'), 'utf8')]),
    );
    expect(Object.keys(reasons).sort()).toEqual(['gen-000002', 'gen-000003', 'gen-000004']);
    expect(reasons['gen-000004']).toMatch(/^images damaged/);
    expect(reasons['gen-000003']).toMatch(/format 99/);
    expect(reasons['gen-000002']).toMatch(/stasis\.json is missing/);
    expect(generations(dir)).toEqual(['gen-000001']);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
    await next.signal('SIGTERM');
    expect((await next.finished()).code).toBe(143);
  });

  test('a restore that never finishes (criu hangs, the pod is killed) is tried once more, then quarantined: fresh start', async () => {
    const { dir, env } = setup();
    await dumpedOnce(COUNTER, env);
    // A generation without a size manifest (as an older stasis wrote it) whose pages are cut short:
    // criu's restorer then reads the missing pages for ever.
    const gen = join(dir, 'gen-000001');
    const meta = JSON.parse(readFileSync(join(gen, 'stasis.json'), 'utf8')) as Record<string, unknown>;
    delete meta.images;
    writeFileSync(join(gen, 'stasis.json'), JSON.stringify(meta));
    for (const name of readdirSync(gen).filter((file) => file.startsWith('pages-'))) truncateSync(join(gen, name), 4096);

    for (let attempt = 1; attempt <= 2; attempt++) {
      const hung = container(COUNTER, env);
      await hung.waitForEvent('restore started', WAIT);
      await sleep(3000);
      expect(hung.event('restored')).toBeUndefined();
      expect(hung.stdout()).toEqual([]);
      if (attempt === 2) expect(hung.event('an earlier restore of this generation never finished; trying once more')).toBeDefined();
      await hung.kill(); // what a startup probe or an operator does
      await hung.finished();
    }

    const next = container(COUNTER, env);
    await next.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks', WAIT);
    expect(ticks(next.stdout())[0]).toBe(1);
    expect(next.event('restore started')).toBeUndefined();
    expect(String(next.event('checkpoint unusable, quarantined')?.reason)).toMatch(/^2 restores of this generation started \(.*\) and never finished/);
    const quarantined = readdirSync(join(dir, 'quarantine'));
    expect(quarantined).toHaveLength(1);
    expect(readFileSync(join(dir, 'quarantine', quarantined[0] as string, 'quarantine-reason.txt'), 'utf8')).toMatch(/never finished/);
    await next.signal('SIGTERM');
    expect((await next.finished()).code).toBe(143);
  });

  test('a checkpoint of another STASIS_APP_VERSION is not restored, and not deleted', async () => {
    const { dir, env } = setup();
    const v1 = container(COUNTER, { ...env, STASIS_APP_VERSION: '1.0' });
    await v1.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks of 1.0', WAIT);
    await v1.signal('SIGUSR2');
    const dumped = await v1.finished();
    expect(dumped.code, dumped.raw).toBe(0);

    const v2 = container(COUNTER, { ...env, STASIS_APP_VERSION: '2.0' });
    await v2.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks of 2.0', WAIT);
    expect(ticks(v2.stdout())[0]).toBe(1);
    expect(v2.event('restore started')).toBeUndefined();
    expect(String(v2.event('checkpoint ignored')?.reason)).toMatch(/another command or app version.*"1\.0"/);
    expect(generations(dir)).toEqual(['gen-000001']);
    await v2.signal('SIGTERM');
    expect((await v2.finished()).code).toBe(143);

    const again = container(COUNTER, { ...env, STASIS_APP_VERSION: '1.0' });
    await again.waitForStdout((lines) => ticks(lines).length >= 1, 'ticks of 1.0 again', WAIT);
    expect((await again.waitForEvent('restored', WAIT)).generation).toBe(1);
    expect(ticks(again.stdout())[0]).toBe((ticks(dumped.stdout).at(-1) ?? 0) + 1);
  });
});

describe('dump requests under stress', () => {
  /** The dump events in order: each "dump started" is ended before the next one starts. */
  function expectOneAtATime(events: readonly LogEvent[]): number {
    const sequence = events
      .filter((event) => event.msg === 'dump started' || event.msg === 'dump committed' || event.msg.startsWith('dump failed'))
      .map((event) => (event.msg === 'dump started' ? 'S' : 'E'))
      .join('');
    expect(sequence).toMatch(/^(SE)+$/);
    return sequence.length / 2;
  }

  test('100 dump signals within one second, continue mode: dumps run one at a time, every one commits, the app keeps running', async () => {
    const { dir, env } = setup({ STASIS_AFTER_DUMP: 'continue', STASIS_KEEP: '3' });
    const c = container(COUNTER, env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    const stasis = await c.stasisPid();
    const fds = fdCount(stasis);
    const started = performance.now();
    for (let i = 0; i < 100; i++) {
      process.kill(stasis, 'SIGUSR2');
      await sleep(9);
    }
    expect(performance.now() - started).toBeLessThan(2500);
    // settled: no dump running and none started for a while
    await poll('the dumps to settle', () => (countOf(c, 'dump started') === countOf(c, 'dump committed') ? true : undefined), WAIT);
    await sleep(1500);
    const dumps = expectOneAtATime(c.events());
    expect(dumps).toBeGreaterThanOrEqual(1);
    expect(dumps).toBeLessThanOrEqual(100);
    expect(countOf(c, 'dump committed')).toBe(dumps);
    expect(generations(dir)).toHaveLength(Math.min(3, dumps));
    expect(incoming(dir)).toEqual([]);
    expect(fdCount(stasis)).toBe(fds);
    expect(zombieChildren(stasis)).toEqual([]);
    const at = lastTick(c);
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 3, 'ticks after the storm', WAIT);
    await c.signal('SIGTERM');
    const result = await c.finished();
    expect(result.code, result.raw).toBe(143);
    expectContinuous(ticks(result.stdout));
  });

  test('100 dump signals within one second, exit mode: one dump, stasis exits 0, later requests get its result; the next start restores it', async () => {
    const { dir, socket, env } = setup({ STASIS_AFTER_DUMP: 'exit' });
    const c = container(COUNTER, env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    const stasis = await c.stasisPid();
    const late: Promise<{ code: number; stdout: string }>[] = [];
    for (let i = 0; i < 100 && c.child.exitCode === null; i++) {
      try {
        process.kill(stasis, 'SIGUSR2');
      } catch {
        break; // stasis is gone: it exited after the dump
      }
      if (i === 50) late.push(checkpoint(socket, '--continue'));
      await sleep(9);
    }
    const result = await c.finished();
    expect(result.code, result.raw).toBe(0);
    expect(expectOneAtATime(result.events)).toBe(1);
    expect(named(result.events, 'dump committed')).toHaveLength(1);
    for (const answer of await Promise.all(late)) {
      // answered with the committed generation, or stasis was gone already
      if (answer.code === 0) expect(answer.stdout).toMatch(/generation 1,/);
    }
    expect(generations(dir)).toEqual(['gen-000001']);
    expect(incoming(dir)).toEqual([]);
    const next = container(COUNTER, env);
    await next.waitForStdout((lines) => ticks(lines).length >= 1, 'restored ticks', WAIT);
    expect(ticks(next.stdout())[0]).toBe((ticks(result.stdout).at(-1) ?? 0) + 1);
  });

  test('after an exit-mode dump ended the app, a later request (while stasis waits for leftovers) gets that dump, not a second one', async () => {
    const { dir, socket, env } = setup({ STASIS_AFTER_DUMP: 'exit', STASIS_GRACE: '4s' });
    // a daemon outside the app tree that ignores SIGTERM keeps stasis in its grace period
    const app = ['sh', '-c', `( (trap '' TERM; exec sleep 60) & ); exec '${fixture('counter.sh')}'`];
    const c = container(app, env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    await c.signal('SIGUSR2');
    await c.waitForEvent('sending SIGTERM to processes left behind', WAIT);
    const late = await checkpoint(socket, '--continue');
    expect(late.code, late.stderr).toBe(0);
    expect(late.stdout).toMatch(/generation 1, .*\(exit\)/);
    await c.signal('SIGUSR2');
    const result = await c.finished();
    expect(result.code, result.raw).toBe(0);
    expect(named(result.events, 'dump started')).toHaveLength(1);
    expect(named(result.events, 'dump requested after the app was dumped and ended: answered with that dump').length).toBeGreaterThanOrEqual(1);
    expect(generations(dir)).toEqual(['gen-000001']);
  });

  test.each([
    ['continue', {}, 143, ['gen-000001']],
    ['exit', {}, 0, ['gen-000001']],
    ['continue', { STASIS_CHECKPOINT_ON_TERM: 'true' }, 0, ['gen-000001', 'gen-000002']],
  ] as const)('SIGTERM during a %s-mode dump (%j): the dump finishes first, then SIGTERM is handled', async (mode, extra, code, expected) => {
    const { dir, env } = setup({ STASIS_AFTER_DUMP: mode, ...extra });
    const app = big(100);
    const c = container(app, env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    await c.signal('SIGUSR2');
    await c.waitForEvent('dump started', WAIT);
    await c.signal('SIGTERM');
    const result = await c.finished();
    expect(result.code, result.raw).toBe(code);
    expect(expectOneAtATime(result.events)).toBe(expected.length);
    expect(named(result.events, 'dump committed')).toHaveLength(expected.length);
    expect(generations(dir)).toEqual(expected);
    expect(incoming(dir)).toEqual([]);
    // SIGTERM was held while the first dump ran: the app saw it only after the commit
    const committedAt = named(result.events, 'dump committed')[0]?.time ?? Infinity;
    const exitedAt = named(result.events, 'app exited')[0]?.time ?? 0;
    expect(exitedAt).toBeGreaterThanOrEqual(committedAt);

    const next = container(app, env);
    const restored = await next.waitForEvent('restored', WAIT);
    expect(restored.generation).toBe(expected.length);
  });

  test.each(['continue', 'exit'] as const)('the app dies in the middle of a %s-mode dump: no crash, no half generation, stasis exits with the app status', async (mode) => {
    const { dir, env } = setup({ STASIS_AFTER_DUMP: mode });
    const c = container(big(200), env);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    const app = await appPid(c, 'python3');
    await c.signal('SIGUSR2');
    await halfWritten(dir, 16 << 20);
    process.kill(app, 'SIGKILL');
    const result = await c.finished();
    expect(result.raw).not.toMatch(/internal error/);
    expect(result.code, result.raw).toBe(137);
    expect(named(result.events, 'dump failed; the app died during it')).toHaveLength(1);
    expect(named(result.events, 'dump failed; the app keeps running')).toHaveLength(0);
    expect(named(result.events, 'app exited')[0]?.signal).toBe('SIGKILL');
    expect(generations(dir)).toEqual([]);
    expect(incoming(dir)).toEqual([]);
  });
});

describe('the restore environment', () => {
  test('the PID of the checkpointed app is taken in the new container: a clear message, quarantine, fresh start', async () => {
    const { base, dir, env } = setup();
    await dumpedOnce(COUNTER, env);
    const appPidThen = JSON.parse(readFileSync(join(dir, 'gen-000001', 'stasis.json'), 'utf8')).appPid as number;

    // A process started in the new container before the restore (a sidecar, a leftover) holds that PID.
    const wrapper = join(base, 'criu-with-squatter');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ "$1" = restore ]; then\n  echo $((SQUAT_PID - 1)) > /proc/sys/kernel/ns_last_pid\n  sleep 300 </dev/null >/dev/null 2>&1 &\nfi\nexec '${CRIU}' "$@"\n`,
      { mode: 0o755 },
    );
    const second = container(COUNTER, { ...env, STASIS_CRIU: wrapper, SQUAT_PID: String(appPidThen) });
    await second.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks', WAIT);
    expect(ticks(second.stdout())[0]).toBe(1);
    const failed = second.event('restore failed; trying an older generation or a fresh start');
    expect(failed, second.events().map((e) => e.msg).join(',')).toBeDefined();
    expect(String(failed?.reason)).toMatch(new RegExp(`PID ${appPidThen} .*is taken in this container by "sleep"`));
    expect((failed?.criu_errors as string[]).join('\n')).toMatch(new RegExp(`Can't fork for ${appPidThen}: File exists`));
    const quarantined = readdirSync(join(dir, 'quarantine'));
    expect(quarantined).toHaveLength(1);
    expect(readFileSync(join(dir, 'quarantine', quarantined[0] as string, 'quarantine-reason.txt'), 'utf8')).toMatch(/is taken in this container/);
    await second.signal('SIGTERM');
    expect((await second.finished()).code).toBe(143);
  });

  test('the restored app dies before criu has returned: stasis exits with its status instead of waiting for ever', async () => {
    const { base, env } = setup();
    await dumpedOnce(COUNTER, env);

    // criu restores, then the app is killed: stasis reaps it before criu's exit has told it the app's PID.
    const wrapper = wrappedCriu(base, 'restore', { after: ["os.kill(int(open(sys.argv[sys.argv.index('--pidfile') + 1]).read()), signal.SIGKILL)", 'time.sleep(1)'] });
    const second = container(COUNTER, { ...env, STASIS_CRIU: wrapper });
    const result = await second.finished(WAIT);
    expect(result.code, result.raw).toBe(137);
    expect(named(result.events, 'restored')).toHaveLength(1);
    expect(named(result.events, 'app exited')[0]?.signal).toBe('SIGKILL');
  });

  test('a criu restore that never returns is killed after STASIS_CRIU_TIMEOUT, and so is what it restored: quarantine, one fresh app', async () => {
    const { base, dir, env } = setup();
    const dumped = await dumpedOnce(COUNTER, env);
    const last = ticks(dumped.stdout).at(-1) ?? 0;

    // the app is back and printing, but criu never returns
    const wrapper = wrappedCriu(base, 'restore', { after: ['time.sleep(600)'] });
    const second = container(COUNTER, { ...env, STASIS_CRIU: wrapper, STASIS_CRIU_TIMEOUT: '3s' });
    const failed = await second.waitForEvent('restore failed; trying an older generation or a fresh start', WAIT);
    expect((failed.criu_errors as string[]).join('\n')).toMatch(/did not finish within 3s \(STASIS_CRIU_TIMEOUT\)/);
    await second.waitForEvent('app started', WAIT);
    const fresh = (lines: readonly string[]): number[] => {
      const all = ticks(lines);
      return all.slice(all.indexOf(1));
    };
    await second.waitForStdout((lines) => ticks(lines).includes(1) && fresh(lines).length >= 20, '20 ticks of the fresh app', WAIT);
    const lines = ticks(second.stdout());
    // only the fresh app prints now: the restored one was killed
    expectContinuous(fresh(second.stdout()));
    expect(lines.slice(0, lines.indexOf(1)).every((n) => n > last)).toBe(true);
    expect(readdirSync(join(dir, 'quarantine'))).toHaveLength(1);
    await second.signal('SIGTERM');
    expect((await second.finished()).code).toBe(143);
  });

  test('SIGTERM while the restore runs is held until the restored app is back, then delivered to it', async () => {
    const { env } = setup({ STASIS_LOG_LEVEL: 'debug' });
    const app = big(300);
    await dumpedOnce(app, env);

    const second = container(app, env);
    await second.waitForEvent('restore started', WAIT);
    await second.signal('SIGTERM');
    const result = await second.finished();
    expect(result.code, result.raw).toBe(143);
    const msgs = result.events.map((event) => event.msg);
    const queued = result.events.findIndex((event) => event.msg === 'signal queued' && event.signal === 'SIGTERM');
    expect(queued, msgs.join(',')).toBeGreaterThan(-1);
    expect(queued).toBeLessThan(msgs.indexOf('restored'));
    expect(named(result.events, 'app exited')[0]?.signal).toBe('SIGTERM');
  });

  describe.each([
    ['missing', (base: string) => join(base, 'no-such-criu'), /cannot run criu/],
    [
      'too old',
      (base: string) => {
        const old = join(base, 'criu-3');
        writeFileSync(old, '#!/bin/sh\necho "Version: 3.17.1"\n', { mode: 0o755 });
        return old;
      },
      /version 3\.17\.1; stasis needs criu 4 or newer/,
    ],
  ] as const)('criu %s with STASIS_DIR set', (_what, makeCriu, reason) => {
    test('the app starts, the log says why checkpoints are off, and a dump request answers with that reason', async () => {
      const { base, socket, env } = setup({ STASIS_AFTER_DUMP: 'exit' });
      const c = container(COUNTER, { ...env, STASIS_CRIU: makeCriu(base) });
      await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks', WAIT);
      expect(ticks(c.stdout())[0]).toBe(1);
      expect(String(c.event('checkpoints are off: no usable criu')?.reason)).toMatch(reason);

      await c.signal('SIGUSR2');
      const refused = await c.waitForEvent('dump requested but checkpoints are off', WAIT);
      expect(String(refused.reason)).toMatch(reason);
      const answer = await checkpoint(socket, '--exit');
      expect(answer.code).toBe(1);
      expect(answer.stderr).toMatch(/checkpoint failed: checkpoints are off: /);
      expect(answer.stderr).toMatch(reason);
      const at = lastTick(c);
      await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 3, 'ticks after the refused requests', WAIT);
      await c.signal('SIGTERM');
      const result = await c.finished();
      expect(result.code, result.raw).toBe(143);
      expectContinuous(ticks(result.stdout));
    });
  });

  describe('an unsafe checkpoint directory is refused and the app starts fresh', () => {
    let base = '';
    let dir = '';

    beforeAll(async () => {
      base = mkdtempSync(join(tmpdir(), 'stasis-unsafe-'));
      dir = join(base, 'checkpoints');
      const c = new Container(COUNTER, { STASIS_DIR: dir, STASIS_SOCKET: join(base, 'control.sock') });
      await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
      await c.signal('SIGUSR2');
      expect((await c.finished()).code).toBe(0);
      expect(generations(dir)).toEqual(['gen-000001']);
    }, 2 * WAIT);

    afterAll(() => rmSync(base, { recursive: true, force: true }));

    test.each([
      ['writable by its group', () => chmodSync(dir, 0o770), () => chmodSync(dir, 0o700), () => dir, /writable by group or others \(mode 770\)/],
      ['owned by another user', () => chownSync(dir, 65534, 65534), () => chownSync(dir, 0, 0), () => dir, /owned by uid 65534/],
      [
        'a symlink pointing elsewhere',
        () => symlinkSync(dir, join(base, 'link')),
        () => rmSync(join(base, 'link')),
        () => join(base, 'link'),
        /is a symbolic link/,
      ],
    ] as const)('%s', async (_what, spoil, repair, stasisDir, reason) => {
      spoil();
      cleanups.push(repair);
      const c = container(COUNTER, { STASIS_DIR: stasisDir(), STASIS_SOCKET: join(base, 'control.sock') });
      await c.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks', WAIT);
      expect(ticks(c.stdout())[0]).toBe(1);
      const refused = c.event('checkpoints are off: checkpoint directory refused');
      expect(String(refused?.reason)).toMatch(reason);
      expect(c.event('restore started')).toBeUndefined();
      await c.signal('SIGTERM');
      expect((await c.finished()).code).toBe(143);
      // nothing in it was touched
      expect(generations(dir)).toEqual(['gen-000001']);
    });
  });
});

describe('bad configuration', () => {
  /** Per variable: bad values (empty, wrong type, out of range, unknown signal, bad duration) and a word of what is allowed. */
  const BAD: Readonly<Record<string, { readonly values: readonly string[]; readonly allowed: string }>> = {
    STASIS_DIR: { values: ['relative/dir'], allowed: 'absolute path' },
    STASIS_DUMP_SIGNAL: { values: ['', 'SIGFOO', 'KILL', '99', 'RTMIN'], allowed: 'catchable signal' },
    STASIS_AFTER_DUMP: { values: ['', 'stop'], allowed: 'one of continue, exit' },
    STASIS_CHECKPOINT_ON_TERM: { values: ['', 'maybe', '2'], allowed: 'true or false' },
    STASIS_INTERVAL: { values: ['5x', '500ms', '-1s', '600h'], allowed: 'duration of at least 1s and at most 596h' },
    STASIS_SOCKET: { values: ['', 'relative.sock'], allowed: 'absolute path' },
    STASIS_KEEP: { values: ['', '0', '1001', 'two', '1.5'], allowed: 'whole number from 1 to 1000' },
    STASIS_ON_RESTORE_FAILURE: { values: ['', 'retry'], allowed: 'one of fresh, exit' },
    STASIS_MIN_PID: { values: ['', '-1', '4194304', 'x'], allowed: 'whole number from 0 to 4194303' },
    STASIS_CRIU: { values: ['', '  '], allowed: 'non-empty' },
    STASIS_CRIU_DUMP_OPTS: { values: ['"unterminated'], allowed: 'matching quotes' },
    STASIS_CRIU_RESTORE_OPTS: { values: ["--x 'y"], allowed: 'matching quotes' },
    STASIS_CRIU_TIMEOUT: { values: ['500ms', '0', 'never', '700h'], allowed: 'duration of at least 1s and at most 596h' },
    STASIS_LAZY: { values: ['', 'maybe', '2'], allowed: 'true or false' },
    STASIS_TCP: { values: ['', 'on'], allowed: 'one of established, close, off' },
    STASIS_FILE_LOCKS: { values: ['', 'yes please'], allowed: 'true or false' },
    STASIS_EXT_UNIX_SK: { values: ['2'], allowed: 'true or false' },
    STASIS_PRESERVE: { values: ['relative/file', '/a,,/b'], allowed: 'comma-separated absolute paths' },
    STASIS_PRESERVE_EXCLUDE: { values: ['*.log'], allowed: 'absolute paths or globs' },
    STASIS_PRESERVE_LIMIT: { values: ['', 'lots', '2TiB'], allowed: 'a size such as 64MiB' },
    STASIS_GHOST_LIMIT: { values: ['-1', '3G'], allowed: 'at most 2GiB' },
    STASIS_LOG_LEVEL: { values: ['', 'verbose'], allowed: 'one of trace, debug' },
    STASIS_LOG_FORMAT: { values: ['xml'], allowed: 'one of json, pretty, auto' },
    STASIS_SIGNAL_GROUP: { values: ['maybe'], allowed: 'true or false' },
    STASIS_REWRITE: { values: ['TERM', 'KILL:TERM', 'TERM:FOO'], allowed: 'FROM:TO signal pairs' },
    STASIS_REMAP_EXIT: { values: ['256', 'x'], allowed: 'exit codes 0-255' },
    STASIS_SUBREAPER: { values: ['enable'], allowed: 'true or false' },
    STASIS_GRACE: { values: ['', '5x', 'soon', '-1s'], allowed: 'duration such as 500ms' },
    STASIS_STORE: { values: ['bucket/prefix', 's3://UPPER/x', 's3://b-b/{pod}'], allowed: 's3://BUCKET/PREFIX' },
    STASIS_STORE_TEMPLATE: { values: ['https://bucket/x', 's3://'], allowed: 's3://BUCKET/PREFIX' },
    STASIS_S3_ENDPOINT: { values: ['rgw:7480', 'ftp://x'], allowed: 'http:// or https:// URL' },
    STASIS_COMPRESS: { values: ['', 'gzip'], allowed: 'one of zstd, none' },
    STASIS_COMPRESS_LEVEL: { values: ['0', '20', 'max'], allowed: 'whole number from 1 to 19' },
    STASIS_ENCRYPTION_KEY_FILE: { values: ['key.txt'], allowed: 'absolute path' },
  };
  /** Options that take any text at all. */
  const ANYTHING = new Set(['STASIS_APP_VERSION']);

  test('the table covers every option of src/config.ts', () => {
    expect(Object.keys(BAD).sort()).toEqual(OPTIONS.map((option) => option.env).filter((env) => !ANYTHING.has(env)).sort());
  });

  interface Case {
    readonly name: string;
    readonly env: Record<string, string>;
    readonly args: readonly string[];
    readonly names: string;
    readonly value: string;
    readonly allowed: string;
  }
  const cases: Case[] = [];
  for (const option of OPTIONS) {
    const bad = BAD[option.env];
    if (!bad) continue;
    for (const value of bad.values) {
      cases.push({ name: `${option.env}=${JSON.stringify(value)}`, env: { [option.env]: value }, args: [], names: option.env, value, allowed: bad.allowed });
    }
    const value = bad.values.find((v) => v.trim() !== '') ?? (bad.values[0] as string);
    // --flag=VALUE for every option; a bool flag with a value is refused by the parser
    const flag = `--${option.flag}`;
    cases.push({ name: `${flag}=${JSON.stringify(value)}`, env: {}, args: [`${flag}=${value}`], names: flag, value, allowed: option.kind === 'bool' ? '' : bad.allowed });
  }

  test(`each of ${cases.length} bad values: exit 2, a message naming the variable, the value and what is allowed; nothing started`, async () => {
    const work = mkdtempSync(join(tmpdir(), 'stasis-badconf-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const results = await mapLimit(cases, 4, async (c) => {
      const marker = join(work, c.name.replace(/[^A-Za-z0-9]/g, '_'));
      const dir = join(work, `dir-${c.name.replace(/[^A-Za-z0-9]/g, '_')}`);
      const result = await runStasis({
        args: [...c.args, '--', 'sh', '-c', 'touch "$1"; echo APP-RAN', 'sh', marker],
        env: { STASIS_DIR: dir, STASIS_SOCKET: join(work, 'sock'), ...c.env },
        namespace: false,
        timeoutMs: 30_000,
      });
      return { c, result, marker, dir };
    });
    const wrong: string[] = [];
    for (const { c, result, marker, dir } of results) {
      const message = result.stderr.trim();
      const problems = [
        result.code !== 2 && `exit ${result.code}`,
        result.stdout !== '' && `stdout ${JSON.stringify(result.stdout)}`,
        existsSync(marker) && 'the app ran',
        existsSync(dir) && c.names !== 'STASIS_DIR' && 'the checkpoint directory was created',
        !message.includes(c.names) && 'no variable/flag name',
        !message.includes(c.value.trim()) && 'no value',
        c.allowed !== '' && !message.includes(c.allowed) && `no "${c.allowed}"`,
      ].filter(Boolean);
      if (problems.length > 0) wrong.push(`${c.name}: ${problems.join(', ')}; stderr ${JSON.stringify(message.slice(0, 300))}`);
      else if (c.args.length === 0 || c.allowed !== '') expect(message).toMatch(/^stasis: .* is not valid: expected /m);
    }
    expect(wrong).toEqual([]);
  }, 240_000);
});

describe('control socket', () => {
  test('only its owner can connect: mode 0600, another user gets EACCES, stasis keeps running', async () => {
    const base = mkdtempSync(join(tmpdir(), 'stasis-sock-'));
    cleanups.push(() => rmSync(base, { recursive: true, force: true }));
    // The folders on the way are open to everyone: only the socket's own mode keeps others out.
    chmodSync(base, 0o755);
    mkdirSync(join(base, 'run'), { mode: 0o755 });
    const socket = join(base, 'run', 'control.sock');
    const c = container(COUNTER, { STASIS_DIR: join(base, 'checkpoints'), STASIS_SOCKET: socket, STASIS_AFTER_DUMP: 'continue' });
    await c.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks', WAIT);
    await poll('the control socket', () => (existsSync(socket) ? true : undefined), 15_000);
    const info = statSync(socket);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.uid).toBe(process.getuid?.());

    const connectAs = (user: string[]): Promise<{ code: number; stderr: string }> =>
      new Promise((resolve) => {
        const script = 'import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(b"{}\\n")\nprint(s.recv(4096).decode())';
        execFile(user[0] as string, [...user.slice(1), PYTHON, '-c', script, socket], (error, _stdout, stderr) => {
          resolve({ code: error ? Number(error.code ?? 1) : 0, stderr });
        });
      });
    const stranger = await connectAs(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toMatch(/PermissionError|Permission denied/);
    const owner = await connectAs(['env']);
    expect(owner.code, owner.stderr).toBe(0);

    const answer = await checkpoint(socket);
    expect(answer.code, answer.stderr).toBe(0);
    const at = lastTick(c);
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 3, 'ticks after', WAIT);
    await c.signal('SIGTERM');
    expect((await c.finished()).code).toBe(143);
  });
});
