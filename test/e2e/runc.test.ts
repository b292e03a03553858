/**
 * stasis in a real OCI runtime: Debian 13 rootfs (scripts/build-rootfs.sh, as
 * Dockerfile.example builds the image), `runc run` with stasis as PID 1, the
 * checkpoint folder bind-mounted from the host, and the capabilities
 * deploy/kubernetes declares. Never skipped: without runc, debootstrap or root it fails.
 */
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { counts, expectRun } from '../helpers/container.js';
import { capabilitiesFor, type CapabilityMode } from '../helpers/oci.js';
import type { CapturedResult } from '../helpers/captured.js';
import { ROOTFS_ENV, RuncContainer, buildRootfs, missingRuncTools } from '../helpers/runc.js';

/** Where the volume is mounted and STASIS_DIR inside it (stasis creates it 0700). */
const VOLUME = '/var/lib/stasis';
const STASIS_DIR = `${VOLUME}/checkpoints`;
const APP = ['/app/counter.sh'];
/** 20 in CI; bench/runc-migrations.sh asks for more. */
const MIGRATIONS = Number(process.env.STASIS_RUNC_MIGRATIONS ?? 20);

let rootfs = '';
const running: RuncContainer[] = [];
const volumes: string[] = [];

beforeAll(() => {
  const missing = missingRuncTools();
  if (missing) throw new Error(missing);
  rootfs = buildRootfs();
}, 60 * 60_000);

afterEach(() => {
  for (const container of running.splice(0)) container.remove();
  for (const dir of volumes.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function volume(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-runc-volume-'));
  volumes.push(dir);
  return dir;
}

interface StartOptions {
  readonly app?: readonly string[];
  /** a tmpfs on /tmp (an emptyDir, as pods with a read-only root mount it); the privileged mode always has one */
  readonly tmp?: boolean;
  readonly user?: { readonly uid: number; readonly gid: number };
  readonly noNewPrivileges?: boolean;
}

function start(mode: CapabilityMode, hostVolume: string, env: Record<string, string> = {}, options: StartOptions = {}): RuncContainer {
  const container = new RuncContainer({
    rootfs,
    args: ['/usr/local/bin/stasis', '--', ...(options.app ?? APP)],
    env: { ...ROOTFS_ENV, STASIS_DIR, ...env },
    capabilities: capabilitiesFor(mode),
    // criu's default mode makes a probe folder in /tmp; --unprivileged needs no writable /tmp.
    writableTmp: mode === 'privileged' || options.tmp === true,
    ...(options.user ? { user: options.user } : {}),
    ...(options.noNewPrivileges === undefined ? {} : { noNewPrivileges: options.noNewPrivileges }),
    volumes: { [hostVolume]: VOLUME },
  });
  running.push(container);
  return container;
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const errs = (lines: readonly string[]): number[] => counts(lines, 'err');

/** One container's life: wait for ticks, `runc kill USR2`, expect exit 0 from `runc run` after a committed dump. */
async function runUntilDump(mode: CapabilityMode, hostVolume: string, minTicks: number): Promise<CapturedResult> {
  const container = start(mode, hostVolume);
  await container.waitForStdout((lines) => ticks(lines).length >= minTicks, `${minTicks} ticks in ${container.id}`);
  container.kill('USR2');
  const result = await container.finished();
  expect(result.code, result.raw).toBe(0);
  expect(result.events.some((event) => event.msg === 'dump committed'), result.raw).toBe(true);
  return result;
}

/** A minimal-capability container that restores `generation`, runs, and ends with `runc kill TERM`: exit 143 through runc run. */
async function restoreThenTerm(hostVolume: string, generation: number): Promise<CapturedResult> {
  const container = start('minimal', hostVolume);
  await container.waitForStdout((lines) => ticks(lines).length >= 3, `ticks after the restore in ${container.id}`);
  expect(container.event('restored')?.generation, container.events().map((event) => event.msg).join(',')).toBe(generation);
  container.kill('TERM');
  const end = await container.finished();
  expect(end.code, end.raw).toBe(143);
  return end;
}

async function migrateOnce(mode: CapabilityMode): Promise<void> {
  const hostVolume = volume();
  const first = await runUntilDump(mode, hostVolume, 5);
  expectRun(1, ticks(first.stdout));
  expectRun(1, errs(first.stderr));
  expect(first.events.find((event) => event.msg === 'checkpoints on')?.unprivileged, first.raw).toBe(mode === 'minimal');
  // /proc/sys is read-only: the floor was raised by forking, and the app got PID 10000.
  expect(first.events.find((event) => /PID floor raised/.test(event.msg))?.method, first.raw).toBe('fork');
  expect(first.events.find((event) => event.msg === 'app started')?.pid, first.raw).toBe(10000);

  const second = start(mode, hostVolume);
  await second.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks after the restore');
  expect(second.event('restored')?.pid, second.events().map((event) => event.msg).join(',')).toBe(10000);
  expect(second.event('app started')).toBeUndefined();
  second.kill('TERM');
  const result = await second.finished();
  // The app died of SIGTERM: stasis exits 128+15 and runc run passes it on.
  expect(result.code, result.raw).toBe(143);
  expectRun((ticks(first.stdout).at(-1) ?? 0) + 1, ticks(result.stdout));
  expectRun((errs(first.stderr).at(-1) ?? 0) + 1, errs(result.stderr));
}

describe('runc: minimal capabilities (runtime defaults + CHECKPOINT_RESTORE + SYS_PTRACE), /proc/sys read-only', () => {
  test('container 1 dumps on runc kill USR2, container 2 restores: output continues, exit status through runc run', async () => {
    await migrateOnce('minimal');
  }, 180_000);

  test('the preStop hook of deploy/kubernetes (runc exec: stasis checkpoint) dumps; the next container restores', async () => {
    const hostVolume = volume();
    const first = start('minimal', hostVolume);
    await first.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks');
    const hook = first.exec(['/usr/local/bin/stasis', 'checkpoint', '--timeout', '110s']);
    expect(hook.code, `${hook.stdout}${hook.stderr}`).toBe(0);
    const result = await first.finished();
    expect(result.code, result.raw).toBe(0);
    const end = await restoreThenTerm(hostVolume, 1);
    expectRun((ticks(result.stdout).at(-1) ?? 0) + 1, ticks(end.stdout));
  }, 180_000);

  test('a dump signal that arrives while the restore runs is kept until the app is back, not dropped', async () => {
    const hostVolume = volume();
    const first = await runUntilDump('minimal', hostVolume, 3);
    const second = start('minimal', hostVolume);
    await second.waitForEvent('restore started');
    second.kill('USR2');
    const result = await second.finished();
    expect(result.code, result.raw).toBe(0);
    expect(result.events.map((event) => event.msg), result.raw).toEqual(expect.arrayContaining(['restored', 'dump committed']));
    const end = await restoreThenTerm(hostVolume, 2);
    expectRun((ticks(first.stdout).at(-1) ?? 0) + 1, [...ticks(result.stdout), ...ticks(end.stdout)]);
  }, 180_000);

  test(`${MIGRATIONS} consecutive migrations continue the count exactly`, async () => {
    const hostVolume = volume();
    let last = 0;
    const started = performance.now();
    for (let i = 0; i < MIGRATIONS; i++) {
      const result = await runUntilDump('minimal', hostVolume, 3);
      const numbers = ticks(result.stdout);
      expectRun(last + 1, numbers);
      if (i > 0) expect(result.events.find((event) => event.msg === 'restored')?.generation, result.raw).toBe(i);
      last = numbers.at(-1) ?? last;
    }
    const generations = readdirSync(join(hostVolume, 'checkpoints')).filter((name) => name.startsWith('gen-'));
    expect(generations.sort().at(-1)).toBe(`gen-${String(MIGRATIONS).padStart(6, '0')}`);
    console.log(`runc: ${MIGRATIONS} migrations in ${Math.round(performance.now() - started)} ms, last tick ${last}`);
  }, MIGRATIONS * 45_000);
});

/** Container 1 dumps; container 2 restores with STASIS_LAZY=true and runs until SIGTERM. */
async function lazyMigration(mode: CapabilityMode): Promise<{ first: CapturedResult; second: CapturedResult }> {
  const hostVolume = volume();
  const first = await runUntilDump(mode, hostVolume, 5);
  const container = start(mode, hostVolume, { STASIS_LAZY: 'true' });
  await container.waitForEvent('restored');
  await container.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks after the restore');
  if (mode === 'privileged') await container.waitForEvent('lazy restore complete: every page is in');
  container.kill('TERM');
  const second = await container.finished();
  expect(second.code, second.raw).toBe(143);
  expectRun((ticks(first.stdout).at(-1) ?? 0) + 1, ticks(second.stdout));
  return { first, second };
}

describe('runc: privileged-style (adds CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_TIME and a writable /tmp): criu in its default mode', () => {
  test('container 1 dumps, container 2 restores', async () => {
    await migrateOnce('privileged');
  }, 180_000);

  test('STASIS_LAZY=true: a lazy restore, every page comes in, the count continues', async () => {
    const { second } = await lazyMigration('privileged');
    expect(second.events.find((event) => event.msg === 'restored')?.lazy, second.raw).toBe(true);
  }, 180_000);
});

describe('runc: minimal capabilities and STASIS_LAZY=true', () => {
  test('criu --unprivileged has no lazy pages: an eager restore, and the log says why', async () => {
    const { second } = await lazyMigration('minimal');
    expect(second.events.find((event) => event.msg === 'restored')?.lazy, second.raw).toBe(false);
    const fallback = second.events.find((event) => event.msg === 'lazy restore unavailable; restoring eagerly');
    expect(String(fallback?.reason), second.raw).toMatch(/uffd/i);
  }, 180_000);
});

describe('runc: fresh containers (a new tmpfs on /tmp and /run in each), minimal capabilities', () => {
  test('a JVM with default flags (its perf-data file mapped from /tmp) migrates; the count continues', async () => {
    const hostVolume = volume();
    const jvm = { app: ['java', '-cp', '/app', 'Tick'], tmp: true };
    const first = start('minimal', hostVolume, {}, jvm);
    await first.waitForStdout((lines) => ticks(lines).length >= 10, '10 ticks of the JVM', 60_000);
    first.kill('USR2');
    const dumped = await first.finished();
    expect(dumped.code, dumped.raw).toBe(0);
    const committed = dumped.events.find((event) => event.msg === 'dump committed');
    expect(Number(committed?.preserved_files), dumped.raw).toBeGreaterThan(0);

    const second = start('minimal', hostVolume, {}, jvm);
    await second.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks of the restored JVM', 60_000);
    expect(second.event('restored')?.generation, JSON.stringify(second.events())).toBe(1);
    second.kill('TERM');
    const result = await second.finished();
    expect(second.event('app started'), result.raw).toBeUndefined();
    // SIGTERM ends the JVM through its shutdown hooks: exit 143
    expect(result.code, result.raw).toBe(143);
    expectRun((ticks(dumped.stdout).at(-1) ?? 0) + 1, ticks(result.stdout));
  }, 180_000);

  test('a Python app with an open /tmp log and a unix socket server in /run/app migrates: the socket answers, the log keeps its lines', async () => {
    const hostVolume = volume();
    const python = { app: ['python3', '/app/files-app.py', '--log', '/tmp/app.log', '--socket', '/run/app/app.sock'], tmp: true };
    const ask = (container: RuncContainer): string => {
      const client = container.exec(['python3', '-c', 'import socket; s = socket.socket(socket.AF_UNIX); s.connect("/run/app/app.sock"); print(s.recv(64).decode().strip())']);
      expect(client.code, client.stderr).toBe(0);
      return client.stdout.trim();
    };
    const first = start('minimal', hostVolume, {}, python);
    await first.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks');
    expect(ask(first)).toMatch(/^count \d+$/);
    first.kill('USR2');
    const dumped = await first.finished();
    expect(dumped.code, dumped.raw).toBe(0);
    expect(Number(dumped.events.find((event) => event.msg === 'dump committed')?.preserved_files), dumped.raw).toBeGreaterThanOrEqual(1);
    const last = ticks(dumped.stdout).at(-1) ?? 0;

    const second = start('minimal', hostVolume, {}, python);
    await second.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore');
    expect(second.event('app started')).toBeUndefined();
    expect(ticks(second.stdout())[0]).toBe(last + 1);
    expect(ask(second)).toMatch(/^count \d+$/);
    const log = second.exec(['cat', '/tmp/app.log']).stdout.split('\n');
    expect(log.slice(0, 3)).toEqual(['line 1', 'line 2', 'line 3']);
    expect(log).toContain(`line ${last + 2}`);
    second.kill('TERM');
    expect((await second.finished()).code).toBe(143);
  }, 180_000);

  test('an app holding a deleted 2 MiB temp file migrates', async () => {
    const hostVolume = volume();
    const ghost = { app: ['/app/ghost-counter.sh'], tmp: true };
    const first = start('minimal', hostVolume, {}, ghost);
    await first.waitForStdout((lines) => lines.includes('ghost open') && ticks(lines).length >= 17, 'the ghost file');
    first.kill('USR2');
    const dumped = await first.finished();
    expect(dumped.code, dumped.raw).toBe(0);
    const second = start('minimal', hostVolume, {}, ghost);
    await second.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore');
    expect(second.event('app started')).toBeUndefined();
    expect(ticks(second.stdout())[0]).toBe((ticks(dumped.stdout).at(-1) ?? 0) + 1);
    second.kill('TERM');
    expect((await second.finished()).code).toBe(143);
  }, 180_000);

  test('over STASIS_PRESERVE_LIMIT the dump fails naming the biggest file, and the app keeps running', async () => {
    const big = { app: ['python3', '/app/files-app.py', '--big', '/tmp/big.bin', '3'], tmp: true };
    const container = start('minimal', volume(), { STASIS_PRESERVE_LIMIT: '1M' }, big);
    await container.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    container.kill('HUP');
    await container.waitForStdout((lines) => lines.includes('big written'), 'the big file');
    container.kill('USR2');
    const failed = await container.waitForEvent('dump could not be committed; the app keeps running, the previous generation is intact');
    expect(String(failed.error)).toMatch(/over STASIS_PRESERVE_LIMIT \(1\.0 MiB\); the biggest: \/tmp\/big\.bin \(3\.0 MiB\)/);
    const atFailure = ticks(container.stdout()).at(-1) ?? 0;
    await container.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= atFailure + 5, 'ticks after the failed dump');
    container.kill('TERM');
    expect((await container.finished()).code).toBe(143);
  }, 180_000);

  test('an app that runs as another user (setpriv, uid 65534): doctor warns, the dump fails naming the uid and SYS_RESOURCE, the app keeps running', async () => {
    const app = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '/app/counter.sh'];
    const container = start('minimal', volume(), {}, { app });
    await container.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    const doctor = container.exec(['/usr/local/bin/stasis', 'doctor', '--json']);
    const checks = (JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string; fix: string | null }[] }).checks;
    expect(checks.find((check) => check.name === 'app user'), doctor.stdout).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/runs as uid 65534 .*no CAP_SYS_RESOURCE/),
      fix: expect.stringMatching(/SYS_RESOURCE/),
    });
    container.kill('USR2');
    const failed = await container.waitForEvent('dump failed; the app keeps running');
    expect(String(failed.error)).toMatch(/^process \d+ of the app runs as uid 65534; criu needs CAP_SYS_RESOURCE/);
    const before = ticks(container.stdout()).length;
    await container.waitForStdout((lines) => ticks(lines).length >= before + 3, 'ticks after the failed dump');
    container.kill('TERM');
    expect((await container.finished()).code).toBe(143);
  }, 180_000);
});

describe('runc: a non-root pod (uid 1000, criu with file capabilities, no_new_privs off)', () => {
  test('container 1 dumps on runc kill USR2, container 2 restores: the count continues', async () => {
    const hostVolume = volume();
    chownSync(hostVolume, 1000, 1000);
    const nonRoot = { user: { uid: 1000, gid: 1000 }, noNewPrivileges: false, tmp: true };
    const first = start('minimal', hostVolume, {}, nonRoot);
    await first.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks');
    // stasis (PID 1) itself runs as uid 1000 and has none of the added capabilities: only criu's file gives them
    const status = first.exec(['cat', '/proc/1/status']).stdout;
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(first.event('checkpoints on')?.unprivileged, JSON.stringify(first.events())).toBe(true);
    const doctor = first.exec(['/usr/local/bin/stasis', 'doctor', '--json']);
    const checks = (JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks;
    expect(checks.find((check) => check.name === 'capabilities')?.status, doctor.stdout).toBe('warn');
    // /proc/sys is read-only: criu check stops at ns_last_pid, which restores do not need
    expect(checks.find((check) => check.name === 'criu check --unprivileged')?.status, doctor.stdout).toBe('warn');
    expect(doctor.code, doctor.stdout).toBe(0);
    first.kill('USR2');
    const dumped = await first.finished();
    expect(dumped.code, dumped.raw).toBe(0);
    const second = start('minimal', hostVolume, {}, nonRoot);
    await second.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore');
    expect(second.event('restored')?.generation, JSON.stringify(second.events())).toBe(1);
    second.kill('TERM');
    const result = await second.finished();
    expect(result.code, result.raw).toBe(143);
    expectRun((ticks(dumped.stdout).at(-1) ?? 0) + 1, ticks(result.stdout));
  }, 180_000);
});
