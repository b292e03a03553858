/**
 * `stasis status` and `stasis doctor` run as the real binary against checkpoint
 * directories that real stasis containers with real criu produced.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CRIU, counts, type Container } from '../helpers/container.js';
import { useLab } from '../helpers/lab.js';
import { describe as explain, fixture, runStasis, type StasisResult } from '../helpers/stasis.js';

const COUNTER = [fixture('counter.sh')];
const lab = useLab('stasis-sd-');

/** A checkpoint directory path; `create` makes it 0700 like stasis does. */
function checkpointDir(create = false): string {
  const dir = join(lab.tempDir(), 'checkpoints');
  if (create) mkdirSync(dir, { mode: 0o700 });
  return dir;
}

function container(command: readonly string[], env: Record<string, string>): Container {
  return lab.container(command, env);
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');

/** Runs the counter fresh, dumps it in exit mode: gen-000001. */
async function makeGeneration(dir: string): Promise<void> {
  const c = container(COUNTER, { STASIS_DIR: dir });
  await c.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
  await c.signal('SIGUSR2');
  const result = await c.done;
  expect(result.code, result.raw).toBe(0);
  expect(result.events.some((event) => event.msg === 'dump committed'), result.raw).toBe(true);
}

function stasis(args: readonly string[], env: Record<string, string> = {}): Promise<StasisResult> {
  return runStasis({ args, env, namespace: false, timeoutMs: 60_000 });
}

interface StatusJson {
  dir: string;
  exists: boolean;
  current: string | null;
  generations: {
    name: string;
    generation: number;
    current: boolean;
    bytes: number;
    created: string;
    argv: string[];
    mode: string;
    dump: { duration_ms: number; criu_ms: number; bytes: number; stats: Record<string, number> };
    problem: string | null;
  }[];
  quarantine: { name: string; generation: number; quarantinedAt: string; reason: string; restoreLog: boolean }[];
  lastRestore: { outcome: string; generation: number | null; pid: number | null; at: string; duration_ms: number; errors: string[] } | null;
  lastFailedDump: unknown;
  incoming: string[];
}

async function statusJson(dir: string): Promise<StatusJson> {
  const result = await stasis(['status', '--json'], { STASIS_DIR: dir });
  expect(result.code, explain(result)).toBe(0);
  return JSON.parse(result.stdout) as StatusJson;
}

interface DoctorJson {
  ok: boolean;
  checks: { name: string; status: string; detail: string; fix: string | null }[];
}

const checkNamed = (doctor: DoctorJson, name: string) => doctor.checks.find((check) => check.name === name);

describe('stasis status', () => {
  test('an empty directory: no generations, no quarantine, no restore; human and JSON', async () => {
    const dir = checkpointDir(true);
    const human = await stasis(['status'], { STASIS_DIR: dir });
    expect(human.code, explain(human)).toBe(0);
    expect(human.stdout).toBe(`Checkpoint directory: ${dir}\nCurrent: (none)\n\nGenerations: none\n\nQuarantine: empty\n\nLast restore: none recorded\n`);
    expect(await statusJson(dir)).toEqual({
      dir,
      exists: true,
      current: null,
      generations: [],
      quarantine: [],
      lastRestore: null,
      lastFailedDump: null,
      incoming: [],
    });
  });

  test('a directory that does not exist yet is reported, not created', async () => {
    const dir = checkpointDir();
    const result = await stasis(['status', '--dir', dir]);
    expect(result.code, explain(result)).toBe(0);
    expect(result.stdout).toMatch(/It does not exist yet/);
    expect((await statusJson(dir)).exists).toBe(false);
    expect(() => statSync(dir)).toThrow();
  });

  test('without STASIS_DIR, or with a bad value, it exits 2 like the main program', async () => {
    const [unset, relative, badFlag, badOther, unknown] = await Promise.all([
      stasis(['status']),
      stasis(['status'], { STASIS_DIR: 'relative/path' }),
      stasis(['status', '--dir', 'nope']),
      stasis(['status'], { STASIS_DIR: '/tmp', STASIS_KEEP: 'lots' }),
      stasis(['status', '--bogus'], { STASIS_DIR: '/tmp' }),
    ]);
    expect(unset.code, explain(unset)).toBe(2);
    expect(unset.stderr).toMatch(/STASIS_DIR.*set STASIS_DIR or give --dir/);
    expect(relative.code).toBe(2);
    expect(relative.stderr).toMatch(/STASIS_DIR="relative\/path" is not valid: expected an absolute path/);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/--dir="nope" is not valid/);
    expect(badOther.code).toBe(2);
    expect(badOther.stderr).toMatch(/STASIS_KEEP="lots" is not valid/);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option '--bogus'/);
  });

  test('after a real dump and a real restore: the generation with its stats, current, and the restore', async () => {
    const dir = checkpointDir();
    await makeGeneration(dir);

    const dumped = await statusJson(dir);
    expect(dumped.current).toBe('gen-000001');
    expect(dumped.generations).toHaveLength(1);
    const [generation] = dumped.generations;
    expect(generation).toMatchObject({ name: 'gen-000001', generation: 1, current: true, argv: COUNTER, mode: 'exit', problem: null });
    expect(generation?.bytes).toBeGreaterThan(0);
    expect(generation?.dump.bytes).toBeGreaterThan(0);
    expect(generation?.dump.duration_ms).toBeGreaterThan(0);
    for (const stat of ['freezing_time_us', 'frozen_time_us', 'memdump_time_us', 'memwrite_time_us', 'pages_written']) {
      expect(generation?.dump.stats[stat], stat).toBeGreaterThan(0);
    }
    // The first container found nothing to restore and started fresh.
    expect(dumped.lastRestore).toMatchObject({ outcome: 'none', generation: null });
    expect(dumped.quarantine).toEqual([]);
    expect(statSync(join(dir, 'last-restore.json')).mode & 0o777).toBe(0o600);

    const human = await stasis(['status'], { STASIS_DIR: dir });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('Current: gen-000001');
    expect(human.stdout).toMatch(new RegExp(`^ {2}\\* {2}gen-000001 .* exit {2}${COUNTER[0]}$`, 'm'));
    expect(human.stdout).toMatch(/^ {2}GENERATION {2}TOTAL {2}CRIU +FREEZING {2}FROZEN {2}MEMDUMP {2}MEMWRITE {2}PAGES WRITTEN {2}PRESERVED FILES$/m);
    expect(human.stdout).toMatch(/^ {2}gen-000001 {2}\d.*\d+$/m);
    expect(human.stdout).toMatch(/Last restore: no restorable checkpoint at .*: the app started fresh/);

    const second = container(COUNTER, { STASIS_DIR: dir });
    await second.waitForStdout((lines) => ticks(lines).length >= 2, 'ticks after the restore');
    const restoredEvent = await second.waitForEvent('restored');
    expect(restoredEvent?.generation).toBe(1);
    const restored = await statusJson(dir);
    expect(restored.lastRestore).toMatchObject({ outcome: 'restored', generation: 1, pid: restoredEvent?.pid, errors: [] });
    expect(restored.lastRestore?.duration_ms).toBeGreaterThan(0);
    const text = (await stasis(['status'], { STASIS_DIR: dir })).stdout;
    expect(text).toMatch(/Last restore: restored gen 1 at .*, pid \d+, took \d/);
    await second.signal('SIGTERM');
    expect((await second.done).code).toBe(143);

    // doctor estimates the space the next dump needs from this generation.
    const doctor = await stasis(['doctor', '--json'], { STASIS_DIR: dir, STASIS_CRIU: CRIU });
    expect(checkNamed(JSON.parse(doctor.stdout) as DoctorJson, 'free space')?.detail).toMatch(/the last dump \(gen-000001\) took/);
  });

  test('a generation that failed to restore: quarantined with its reason, and the failed restore', async () => {
    const dir = checkpointDir();
    await makeGeneration(dir);
    // Same size, other bytes: passes stasis's size check, so criu itself fails on it.
    const core = join(dir, 'gen-000001', 'core-10000.img');
    writeFileSync(core, Buffer.alloc(statSync(core).size, 0x5a));
    const failed = await container(COUNTER, { STASIS_DIR: dir, STASIS_ON_RESTORE_FAILURE: 'exit' }).done;
    expect(failed.code, failed.raw).toBe(3);

    const status = await statusJson(dir);
    expect(status.generations).toEqual([]);
    expect(status.current).toBeNull();
    expect(status.quarantine).toHaveLength(1);
    const [entry] = status.quarantine;
    expect(entry?.name).toMatch(/^gen-000001\.\d{4}-\d\d-\d\dT/);
    expect(entry).toMatchObject({ generation: 1, restoreLog: true });
    expect(entry?.reason).toMatch(/^criu restore failed:\n/);
    expect(Date.parse(entry?.quarantinedAt ?? '')).toBeGreaterThan(Date.now() - 120_000);
    expect(status.lastRestore).toMatchObject({ outcome: 'failed', generation: 1, pid: null });
    expect(status.lastRestore?.errors.length).toBeGreaterThan(0);
    expect(status.lastRestore?.errors.join('\n')).toBe(entry?.reason.replace(/^criu restore failed:\n/, ''));

    const human = await stasis(['status'], { STASIS_DIR: dir });
    expect(human.stdout).toContain('Generations: none');
    expect(human.stdout).toMatch(/^Quarantine \(1, never restored again; restore.log inside\):$/m);
    expect(human.stdout).toMatch(/^ {2}gen-000001\.\S+ {2}\d+[sm] ago +criu restore failed: /m);
    expect(human.stdout).toMatch(/^Last restore: FAILED gen 1 at .*\(stasis exited 3\)$/m);
    expect(readFileSync(join(dir, 'last-restore.json'), 'utf8')).toMatch(/"outcome": "failed"/);
  });
});

describe('stasis doctor', () => {
  test('everything present: exit 0, every check ok or a warning', async () => {
    const dir = checkpointDir(true);
    const result = await stasis(['doctor'], { STASIS_DIR: dir, STASIS_CRIU: CRIU });
    expect(result.code, explain(result)).toBe(0);
    expect(result.stdout).toMatch(/^CHECK +STATUS +DETAIL +HOW TO FIX$/m);
    expect(result.stdout).toMatch(/^criu +ok +criu \d+\.\d+/m);
    expect(result.stdout).toMatch(/^criu check( --unprivileged)? +ok +Looks good\.$/m);
    expect(result.stdout).toMatch(/^STASIS_DIR +ok +/m);
    expect(result.stdout).toMatch(/\nReady to checkpoint( \(\d+ warnings?\))?\.\n$/);

    const json = await stasis(['doctor', '--json', '--dir', dir, '--criu', CRIU]);
    expect(json.code, explain(json)).toBe(0);
    const doctor = JSON.parse(json.stdout) as DoctorJson;
    expect(doctor.ok).toBe(true);
    expect(doctor.checks.map((check) => check.name)).toEqual([
      'criu',
      expect.stringMatching(/^criu check/),
      'capabilities',
      'PID 1 / subreaper',
      'app user',
      'ns_last_pid',
      'STASIS_DIR',
      'free space',
      'lazy pages',
      'CRIU_FAULT',
    ]);
    // no stasis is PID 1 here, so there is no app whose users could be judged
    expect(checkNamed(doctor, 'app user')).toMatchObject({ status: 'skip', detail: expect.stringMatching(/^no app of a PID-1 stasis here/) });
    for (const check of doctor.checks.filter((entry) => entry.name !== 'app user')) expect(['ok', 'warn'], `${check.name}: ${check.detail}`).toContain(check.status);
    expect(checkNamed(doctor, 'free space')?.detail).toMatch(/free \(no generation yet/);
  });

  test('a missing criu: exit 1, saying how to fix it', async () => {
    const dir = checkpointDir(true);
    const result = await stasis(['doctor'], { STASIS_DIR: dir, STASIS_CRIU: '/nonexistent' });
    expect(result.code, explain(result)).toBe(1);
    expect(result.stdout).toMatch(/^criu +FAIL +\/nonexistent not found or not executable +install criu 4 or newer/m);
    expect(result.stdout).toMatch(/^criu check +skip +not run: no usable criu$/m);
    expect(result.stdout).toMatch(/\n1 required check failed: stasis cannot checkpoint here until it is fixed\.\n$/);
    const json = JSON.parse((await stasis(['doctor', '--json', '--criu', '/nonexistent'], { STASIS_DIR: dir })).stdout) as DoctorJson;
    expect(json.ok).toBe(false);
    expect(checkNamed(json, 'criu')).toMatchObject({ status: 'FAIL', fix: expect.stringMatching(/STASIS_CRIU/) });
  });

  test('a STASIS_DIR that others can write: exit 1 with chmod 700', async () => {
    const dir = checkpointDir(true);
    chmodSync(dir, 0o777);
    const result = await stasis(['doctor', '--json'], { STASIS_DIR: dir, STASIS_CRIU: CRIU });
    expect(result.code, explain(result)).toBe(1);
    const doctor = JSON.parse(result.stdout) as DoctorJson;
    expect(checkNamed(doctor, 'STASIS_DIR')).toMatchObject({ status: 'FAIL', detail: expect.stringMatching(/writable by group or others \(mode 777\)/), fix: `chmod 700 ${dir}` });
    expect(doctor.checks.filter((check) => check.status === 'FAIL').map((check) => check.name)).toEqual(['STASIS_DIR']);
  });

  test('bad settings exit 2 like the main program', async () => {
    expect((await stasis(['doctor'], { STASIS_CRIU: '' })).code).toBe(2);
    const relative = await stasis(['doctor', '--dir', 'relative']);
    expect(relative.code).toBe(2);
    expect(relative.stderr).toMatch(/--dir="relative" is not valid/);
  });
});

describe('an app named like a subcommand', () => {
  test('`stasis -- status` and `stasis -- doctor` run the app, not the subcommand', async () => {
    const bin = lab.tempDir();
    for (const name of ['status', 'doctor']) {
      writeFileSync(join(bin, name), `#!/bin/sh\necho "app ${name} ran: $*"\n`, { mode: 0o755 });
    }
    const env = { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, STASIS_LOG_LEVEL: 'silent' };
    const status = await stasis(['--', 'status', '--json'], env);
    expect(status.code, explain(status)).toBe(0);
    expect(status.stdout).toBe('app status ran: --json\n');
    const doctor = await stasis(['--log-level', 'silent', '--', 'doctor'], env);
    expect(doctor.code, explain(doctor)).toBe(0);
    expect(doctor.stdout).toBe('app doctor ran: \n');
  });
});
