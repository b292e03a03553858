/**
 * STASIS_TCP (issue 5): an app whose server and client talk over an open loopback
 * TCP connection is dumped and restored in new containers, and the conversation goes
 * on. Each container has its own network namespace (`unshare --net`, lo up), as a pod
 * has: 127.0.0.1 is the same address there, and criu's network lock dies with the
 * namespace. Network locking uses nftables through criu's own libnftables, so no
 * iptables binary is needed (criu's default, `--network-lock iptables`, needs one).
 *
 * criu older than 4.2 cannot dump any inet socket on Linux 6.16 or newer (criu issue
 * 2705), and Debian 13 ships 4.1.1. So the migrations run with a second criu, 4.2.1
 * from Debian sid, that scripts/test.sh unpacks into .cache/criu-sid
 * (STASIS_TEST_CRIU_TCP overrides it); the default criu shows the failure message.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { parseCriuVersion } from '../../src/criu/log.js';
import { CRIU, Container, counts, missingCriu } from '../helpers/container.js';
import { ROOT, fixture, stasisCheckpoint } from '../helpers/stasis.js';

// Other suites share the 2 cores and the disk: waits and tests get room for a slow moment.
const WAIT = 60_000;
vi.setConfig({ testTimeout: 240_000 });

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const APP = [PYTHON, fixture('tcp-chat.py')];
const LOCK = '--network-lock nftables';
const TCP_CRIU = process.env.STASIS_TEST_CRIU_TCP ?? join(ROOT, '.cache/criu-sid/bin/criu');

/** Why `criu` cannot dump TCP sockets on this kernel, or null. */
function tcpUnsupported(criu: string): string | null {
  const version = parseCriuVersion(execFileSync(criu, ['--version'], { encoding: 'utf8' })) ?? [0, 0, 0];
  const [major = 0, minor = 0] = release().split('.').map(Number);
  const newKernel = major > 6 || (major === 6 && minor >= 16);
  const oldCriu = version[0] < 4 || (version[0] === 4 && version[1] < 2);
  return newKernel && oldCriu ? `criu ${version.join('.')} cannot dump inet sockets on Linux ${release()} (needs criu >= 4.2)` : null;
}
const defaultUnsupported = missingCriu() ? null : tcpUnsupported(CRIU);

const running: Container[] = [];
const dirs: string[] = [];

beforeAll(() => {
  const missing = missingCriu();
  if (missing) throw new Error(missing);
  if (!existsSync(TCP_CRIU)) throw new Error(`no criu >= 4.2 at ${TCP_CRIU}: run CRIU_DEBIAN_SUITE=sid CRIU_CACHE=.cache/criu-sid CRIU_MIN_VERSION=4.2 scripts/install-criu.sh (or set STASIS_TEST_CRIU_TCP)`);
  const unsupported = tcpUnsupported(TCP_CRIU);
  if (unsupported) throw new Error(`${TCP_CRIU}: ${unsupported}`);
  if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip') && !existsSync('/usr/bin/ip')) throw new Error('the TCP tests need `ip` (iproute2) to bring up lo');
});

afterEach(async () => {
  for (const container of running.splice(0)) await container.kill();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(extra: Record<string, string> = {}): { dir: string; socket: string; env: Record<string, string> } {
  const base = mkdtempSync(join(tmpdir(), 'stasis-tcp-'));
  dirs.push(base);
  const dir = join(base, 'checkpoints');
  const socket = join(base, 'control.sock');
  const env = { STASIS_DIR: dir, STASIS_SOCKET: socket, STASIS_TCP: 'established', STASIS_CRIU_DUMP_OPTS: LOCK, STASIS_CRIU_RESTORE_OPTS: LOCK, ...extra };
  return { dir, socket, env };
}

function container(env: Record<string, string>): Container {
  const started = new Container(APP, env, { net: true });
  running.push(started);
  return started;
}

const acks = (lines: readonly string[]): number[] => counts(lines, 'ack');
const gots = (lines: readonly string[]): number[] => counts(lines, 'got');

const checkpoint = (socket: string, ...args: string[]) => stasisCheckpoint(['--socket', socket, ...args]);

function expectSequence(numbers: readonly number[]): void {
  expect(numbers.length).toBeGreaterThan(0);
  expect(numbers).toEqual(numbers.map((_, i) => i + 1));
}

describe(`STASIS_TCP=established with ${TCP_CRIU}`, () => {
  test('an open loopback connection survives a continue-mode dump and two migrations to new containers', async () => {
    const { dir, socket, env } = setup({ STASIS_CRIU: TCP_CRIU });
    const first = container(env);
    await first.waitForStdout((lines) => acks(lines).length >= 5, '5 acks over the connection', WAIT);
    await first.signal('SIGUSR2');
    const one = await first.finished();
    expect(one.code, one.raw).toBe(0);

    const second = container(env);
    expect((await second.waitForEvent('restored', WAIT)).generation).toBe(1);
    await second.waitForStdout((lines) => acks(lines).length >= 5, 'acks after the restore', WAIT);
    const kept = await checkpoint(socket, '--continue');
    expect(kept.code, kept.stderr).toBe(0);
    const atKept = acks(second.stdout()).length;
    await second.waitForStdout((lines) => acks(lines).length >= atKept + 5, 'acks after the continue-mode dump', WAIT);
    await second.signal('SIGUSR2');
    const two = await second.finished();
    expect(two.code, two.raw).toBe(0);
    expect(readdirSync(dir).filter((name) => name.startsWith('gen-')).sort()).toEqual(['gen-000002', 'gen-000003']);

    const third = container(env);
    expect((await third.waitForEvent('restored', WAIT)).generation).toBe(3);
    await third.waitForStdout((lines) => acks(lines).length >= 5, 'acks in the third container', WAIT);
    await third.signal('SIGTERM');
    const three = await third.finished();

    const stdout = [...one.stdout, ...two.stdout, ...three.stdout];
    expect(stdout.filter((line) => line.startsWith('gap') || line.startsWith('connection closed'))).toEqual([]);
    // one connection for the whole life of the app: it was set up once
    expect(stdout.filter((line) => line.startsWith('connected on port'))).toHaveLength(1);
    expectSequence(acks(stdout));
    expectSequence(gots(stdout));
  });

  test('STASIS_TCP=off: the dump fails on the open connection, the app keeps talking', async () => {
    const { dir, env } = setup({ STASIS_CRIU: TCP_CRIU, STASIS_TCP: 'off', STASIS_AFTER_DUMP: 'exit' });
    const c = container(env);
    await c.waitForStdout((lines) => acks(lines).length >= 3, 'acks', WAIT);
    await c.signal('SIGUSR2');
    const failed = await c.waitForEvent('dump failed; the app keeps running', WAIT);
    expect((failed.criu_errors as string[]).join('\n')).toMatch(/tcp-established/);
    const at = acks(c.stdout()).length;
    await c.waitForStdout((lines) => acks(lines).length >= at + 3, 'acks after the failed dump', WAIT);
    expect(readdirSync(dir).filter((name) => name.startsWith('gen-'))).toEqual([]);
    await c.signal('SIGTERM');
    expect((await c.finished()).code).toBe(143);
  });
});

// Only where the default criu is older than 4.2 and the kernel 6.16 or newer (as on this machine).
describe.skipIf(defaultUnsupported === null)(`STASIS_TCP=established with ${defaultUnsupported ?? 'an old criu'}`, () => {
  test('the dump fails with a message that names the cause, the app keeps talking', async () => {
    const { env } = setup({ STASIS_AFTER_DUMP: 'exit' });
    const c = container(env);
    await c.waitForStdout((lines) => acks(lines).length >= 3, 'acks', WAIT);
    await c.signal('SIGUSR2');
    const failed = await c.waitForEvent('dump failed; the app keeps running', WAIT);
    expect(String(failed.error)).toMatch(/cannot dump sockets on Linux 6\.16 or newer.*criu 4\.2 or newer/);
    const at = acks(c.stdout()).length;
    await c.waitForStdout((lines) => acks(lines).length >= at + 3, 'acks after the failed dump', WAIT);
    await c.signal('SIGTERM');
    expect((await c.finished()).code).toBe(143);
  });
});
