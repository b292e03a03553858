/**
 * Files in the container's own filesystem travel with the checkpoint (issue 12): two
 * containers, each with a fresh /tmp and /run, share only the checkpoint directory.
 * Real criu; the test reads a container's files through /proc/PID/root.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { counts, type Container } from '../helpers/container.js';
import { useLab } from '../helpers/lab.js';
import { fixture } from '../helpers/stasis.js';

vi.setConfig({ testTimeout: 240_000 });

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const APP = [PYTHON, fixture('files-app.py')];
const lab = useLab('stasis-files-');
const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const WAIT = 60_000;

/** A file inside the container, seen from the host. */
async function inside(c: Container, path: string): Promise<string> {
  return join('/proc', String(await c.stasisPid()), 'root', path);
}

/** One line from the app's unix socket server inside the container. */
async function ask(c: Container, socketPath: string): Promise<string> {
  const path = await inside(c, socketPath);
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = connect(path);
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('end', () => resolve(data.trim()));
    socket.on('error', reject);
  });
}

/** Runs until `minTicks`, dumps in exit mode; returns the last tick. */
async function dumpAfter(c: Container, minTicks: number): Promise<number> {
  await c.waitForStdout((lines) => ticks(lines).length >= minTicks, `${minTicks} ticks`, WAIT);
  await c.signal('SIGUSR2');
  const result = await c.finished();
  expect(result.code, result.raw).toBe(0);
  expect(result.events.some((event) => event.msg === 'dump committed'), result.raw).toBe(true);
  return ticks(result.stdout).at(-1) ?? 0;
}

async function expectContinues(c: Container, last: number): Promise<void> {
  await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore', WAIT);
  expect(c.event('app started'), c.events().map((e) => e.msg).join(',')).toBeUndefined();
  expect(ticks(c.stdout())[0]).toBe(last + 1);
}

async function stop(c: Container): Promise<void> {
  await c.signal('SIGTERM');
  expect((await c.finished()).code).toBe(143);
}

describe('files in the container filesystem migrate', () => {
  test('a Python app with an open log in /tmp and a unix socket server in /run/app: the socket answers after the restore, the log keeps its lines', async () => {
    const dir = join(lab.tempDir(), 'checkpoints');
    const args = [...APP, '--log', '/tmp/app.log', '--socket', '/run/app/app.sock'];
    const first = lab.container(args, { STASIS_DIR: dir });
    await first.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks', WAIT);
    expect(await ask(first, '/run/app/app.sock')).toMatch(/^count \d+$/);
    const last = await dumpAfter(first, 5);
    const committed = first.event('dump committed');
    expect(committed?.preserved_files).toBeGreaterThanOrEqual(1);
    expect(committed?.preserved_bytes).toBeGreaterThan(0);
    const metadata = JSON.parse(readFileSync(join(dir, 'gen-000001', 'stasis.json'), 'utf8')) as { files: { path: string; type: string; sha256?: string }[] };
    expect(metadata.files.map((entry) => `${entry.type} ${entry.path}`)).toEqual(expect.arrayContaining(['file /tmp/app.log', 'dir /run/app']));

    const second = lab.container(args, { STASIS_DIR: dir });
    await expectContinues(second, last);
    expect(second.event('preserved files put back')).toBeDefined();
    expect(await ask(second, '/run/app/app.sock')).toMatch(/^count \d+$/);
    const log = readFileSync(await inside(second, '/tmp/app.log'), 'utf8').split('\n');
    expect(log.slice(0, 3)).toEqual(['line 1', 'line 2', 'line 3']);
    expect(log).toContain(`line ${last + 2}`);
    // the stasis status of the shared directory shows what gen 1 carried
    const status = execFileSync(join(import.meta.dirname, '../../bin/stasis'), ['status', '--json', '--dir', dir], { encoding: 'utf8' });
    const generation = (JSON.parse(status) as { generations: { name: string; dump: { preserved_files: number } }[] }).generations.find((g) => g.name === 'gen-000001');
    expect(generation?.dump.preserved_files).toBeGreaterThanOrEqual(1);
    await stop(second);
  });

  test('STASIS_PRESERVE: a file the app wrote and closed travels too', async () => {
    const dir = join(lab.tempDir(), 'checkpoints');
    const env = { STASIS_DIR: dir, STASIS_PRESERVE: '/tmp/notes' };
    const args = [...APP, '--note', '/tmp/notes/state.txt'];
    const first = lab.container(args, env);
    await first.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks', WAIT);
    const note = readFileSync(await inside(first, '/tmp/notes/state.txt'), 'utf8');
    expect(note).toMatch(/^note from pid \d+\n$/);
    const last = await dumpAfter(first, 3);
    // the restored app does not run its start again: only stasis can have put the note there
    const second = lab.container(args, env);
    await expectContinues(second, last);
    expect(readFileSync(await inside(second, '/tmp/notes/state.txt'), 'utf8')).toBe(note);
    await stop(second);
  });

  test('an app holding a deleted temp file over 1 MiB migrates (STASIS_GHOST_LIMIT, 64MiB by default)', async () => {
    const dir = join(lab.tempDir(), 'checkpoints');
    const first = lab.container([fixture('ghost-counter.sh')], { STASIS_DIR: dir });
    await first.waitForStdout((lines) => lines.includes('ghost open'), 'the ghost file', WAIT);
    const last = await dumpAfter(first, 17);
    const second = lab.container([fixture('ghost-counter.sh')], { STASIS_DIR: dir });
    await expectContinues(second, last);
    await stop(second);
  });

  test('over STASIS_PRESERVE_LIMIT the dump fails naming the biggest file; the app runs on and the previous generation stays current', async () => {
    const dir = join(lab.tempDir(), 'checkpoints');
    const c = lab.container([...APP, '--big', '/tmp/big.bin', '3'], { STASIS_DIR: dir, STASIS_AFTER_DUMP: 'continue', STASIS_PRESERVE_LIMIT: '1M' });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks', WAIT);
    await c.signal('SIGUSR2');
    await c.waitForEvent('dump committed', WAIT);
    await c.signal('SIGHUP');
    await c.waitForStdout((lines) => lines.includes('big written'), 'the big file', WAIT);
    await c.signal('SIGUSR2');
    const failed = await c.waitForEvent('dump could not be committed; the app keeps running, the previous generation is intact', WAIT);
    expect(String(failed.error)).toMatch(/over STASIS_PRESERVE_LIMIT \(1\.0 MiB\); the biggest: \/tmp\/big\.bin \(3\.0 MiB\)/);
    const atFailure = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= atFailure + 5, 'ticks after the failed dump', WAIT);
    expect(readlinkSync(join(dir, 'current'))).toBe('gen-000001');
    await stop(c);
  });

  test('a JVM with default flags (hsperfdata mapped from /tmp) migrates with its count continuing', async () => {
    const work = lab.tempDir();
    writeFileSync(
      join(work, 'Tick.java'),
      'public class Tick { public static void main(String[] a) throws Exception { for (long i = 1; ; i++) { System.out.println("tick " + i); Thread.sleep(100); } } }\n',
    );
    execFileSync('javac', ['-d', work, join(work, 'Tick.java')]);
    const dir = join(work, 'checkpoints');
    const jvm = ['java', '-cp', work, 'Tick'];
    const first = lab.container(jvm, { STASIS_DIR: dir });
    await first.waitForStdout((lines) => ticks(lines).length >= 10, 'JVM ticks', WAIT);
    const pid = String(first.event('app started')?.pid ?? '');
    expect(existsSync(await inside(first, `/tmp/hsperfdata_root/${pid}`))).toBe(true);
    const last = await dumpAfter(first, 10);
    const committed = first.event('dump committed');
    const second = lab.container(jvm, { STASIS_DIR: dir });
    await expectContinues(second, last);
    const restored = second.event('restored');
    console.log(`JVM: dump ${String(committed?.duration_ms)} ms (${String(committed?.bytes)} bytes), restore ${String(restored?.duration_ms)} ms`);
    await stop(second);
  });
});
