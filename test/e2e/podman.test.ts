/**
 * The image of Dockerfile.example, built by buildah (scripts/build-image.sh), run by
 * podman with runc: the securityContext of deploy/kubernetes as podman flags, the
 * checkpoint volume shared by consecutive `podman run` containers, what podman's
 * logs show. Never skipped: without root, podman, buildah or dist/stasis it fails.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { counts, expectRun } from '../helpers/container.js';
import { buildImage, cleanupContainers, missingTools } from '../helpers/image.js';
import { parseAllDocuments } from 'yaml';
import { PodmanContainer, podmanEnv, podOf, PODMAN, type PodmanRunOptions } from '../helpers/podman.js';
import { mustRun, run } from '../helpers/image.js';
import type { CapturedResult } from '../helpers/captured.js';
import { ROOT, sleep, type LogEvent } from '../helpers/stasis.js';

let image = '';
const running: PodmanContainer[] = [];
const volumes: string[] = [];

beforeAll(() => {
  const missing = missingTools('podman e2e test', ['podman', 'buildah', 'runc']);
  if (missing) throw new Error(missing);
  image = buildImage();
}, 30 * 60_000);

const pods: string[] = [];

afterEach(() => {
  for (const pod of pods.splice(0)) spawnSync(PODMAN, ['pod', 'rm', '--force', '--time', '0', pod], { env: { ...process.env, ...podmanEnv() }, stdio: 'ignore', timeout: 60_000 });
  for (const container of running.splice(0)) container.remove();
  for (const dir of volumes.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(() => cleanupContainers(), 120_000);

function volume(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-podman-volume-'));
  volumes.push(dir);
  return dir;
}

function start(hostVolume: string, env: Record<string, string> = {}, seccomp: PodmanRunOptions['seccomp'] = 'unconfined'): PodmanContainer {
  const container = new PodmanContainer({ image, volume: hostVolume, env, seccomp });
  running.push(container);
  return container;
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const errs = (lines: readonly string[]): number[] => counts(lines, 'err');

const last = (numbers: readonly number[]): number => numbers.at(-1) ?? 0;
const eventOf = (result: CapturedResult, msg: string): LogEvent | undefined => result.events.find((event) => event.msg === msg);

describe('podman (runc) with the capabilities and seccompProfile Unconfined of deploy/kubernetes', () => {
  test('the preStop hook (podman exec: stasis checkpoint --exit) dumps; the next podman run restores; podman logs continue without a gap', async () => {
    const hostVolume = volume();
    const first = start(hostVolume);
    await first.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks');
    const hook = await first.exec(['/usr/local/bin/stasis', 'checkpoint', '--exit', '--timeout', '110s']);
    expect(hook.code, `${hook.stdout}${hook.stderr}`).toBe(0);
    expect(hook.stdout).toMatch(/checkpoint committed: generation 1/);
    const one = await first.ended();
    expect(one.code, one.raw).toBe(0);
    expectRun(1, ticks(one.stdout));
    expectRun(1, errs(one.stderr));
    expect(eventOf(one, 'app started')?.pid, one.raw).toBe(10000);

    const second = start(hostVolume);
    await second.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks after the restore');
    expect(second.event('restored')?.generation, second.events().map((event) => event.msg).join(',')).toBe(1);
    expect(second.event('app started')).toBeUndefined();
    await second.stop();
    const two = await second.ended();
    // Without STASIS_CHECKPOINT_ON_TERM the app dies of the SIGTERM: 128 + 15, through conmon and podman wait.
    expect(two.code, two.raw).toBe(143);
    expectRun(last(ticks(one.stdout)) + 1, ticks(two.stdout));
    expectRun(last(errs(one.stderr)) + 1, errs(two.stderr));
  }, 180_000);

  test('podman stop with STASIS_CHECKPOINT_ON_TERM=true dumps, twice; each next podman run restores the last generation', async () => {
    const hostVolume = volume();
    const env = { STASIS_CHECKPOINT_ON_TERM: 'true' };
    let previous = 0;
    for (const generation of [1, 2]) {
      const container = start(hostVolume, env);
      await container.waitForStdout((lines) => ticks(lines).length >= 5, `5 ticks before dump ${generation}`);
      await container.stop();
      const result = await container.ended();
      expect(result.code, result.raw).toBe(0);
      expect(eventOf(result, 'dump committed')?.generation, result.raw).toBe(generation);
      expect(eventOf(result, 'dump started')?.reason, result.raw).toBe('SIGTERM');
      if (generation > 1) expect(eventOf(result, 'restored')?.generation, result.raw).toBe(generation - 1);
      expectRun(previous + 1, ticks(result.stdout));
      previous = last(ticks(result.stdout));
    }
    const third = start(hostVolume);
    await third.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the second restore');
    expect(third.event('restored')?.generation).toBe(2);
    await third.kill('KILL');
    const end = await third.ended();
    expectRun(previous + 1, ticks(end.stdout));
  }, 240_000);

  test("podman's default seccomp filter: the dump fails with criu's seccomp error, the app keeps running, no generation is written", async () => {
    const hostVolume = volume();
    const container = start(hostVolume, {}, 'default');
    await container.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    await container.kill('USR2');
    const failed = await container.waitForEvent('dump failed; the app keeps running');
    expect(failed.criu_errors, JSON.stringify(failed)).toEqual(expect.arrayContaining([expect.stringMatching(/suspending seccomp failed: Operation not permitted/)]));
    expect(failed.error, JSON.stringify(failed)).toMatch(/seccomp filter .*run the container with seccomp unconfined/);
    const after = last(ticks(container.stdout()));
    await container.waitForStdout((lines) => last(ticks(lines)) >= after + 5, 'ticks after the failed dump');
    const checkpoints = join(hostVolume, 'checkpoints');
    expect(existsSync(checkpoints) ? readdirSync(checkpoints).filter((name) => name.startsWith('gen-')) : []).toEqual([]);
    await container.stop();
    const result = await container.ended();
    expect(result.code, result.raw).toBe(143);
    expectRun(1, ticks(result.stdout));
  }, 180_000);
});

interface Template {
  metadata?: unknown;
  spec: Parameters<typeof podOf>[0]['template']['spec'] & { containers: Array<{ lifecycle?: { preStop?: { exec?: { command?: string[] } } } }> };
}

function statefulSetTemplate(): Template {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/kubernetes/statefulset.yaml'), 'utf8')).map((doc) => doc.toJS() as { kind?: string; spec?: { template?: Template } });
  const template = docs.find((doc) => doc.kind === 'StatefulSet')?.spec?.template;
  if (!template) throw new Error('no StatefulSet template in deploy/kubernetes/statefulset.yaml');
  return template;
}

let podSerial = 0;

/** `podman kube play` of a Pod made of the StatefulSet's template; returns its app container's name. */
async function play(hostVolume: string, tmp: boolean): Promise<string> {
  const name = `stasis-e2e-${process.pid}-pod-${++podSerial}`;
  const file = join(hostVolume, '..', `${name}.json`);
  writeFileSync(file, JSON.stringify(podOf({ template: statefulSetTemplate(), name, image, volume: hostVolume, tmp })));
  pods.push(name);
  try {
    await mustRun(PODMAN, ['kube', 'play', '--network', 'none', file], podmanEnv());
  } finally {
    rmSync(file, { force: true });
  }
  return `${name}-app`;
}

async function logsOf(container: string): Promise<{ stdout: string[]; stderr: string[]; events: LogEvent[] }> {
  const result = await run(PODMAN, ['logs', container], podmanEnv());
  const lines = (text: string): string[] => text.split('\n').filter(Boolean);
  const stderr = lines(result.stderr);
  return { stdout: lines(result.stdout), stderr: stderr.filter((line) => !line.startsWith('{')), events: stderr.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogEvent) };
}

/** Polls `podman logs` until the app has printed `count` ticks (the wait is bounded, not a timing assertion). */
async function waitForTicks(container: string, count: number, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const logs = await logsOf(container);
    if (ticks(logs.stdout).length >= count) return;
    if (performance.now() > deadline) throw new Error(`${count} ticks in ${container} not within ${ms} ms: ${JSON.stringify(logs).slice(-2000)}`);
    await sleep(100);
  }
}

async function exitCode(container: string): Promise<number> {
  return Number((await mustRun(PODMAN, ['wait', container], podmanEnv())).trim());
}

describe('podman kube play: a Pod of deploy/kubernetes/statefulset.yaml (its securityContext, env, preStop command)', () => {
  test('as it is, stasis cannot unpack its addon (read-only /tmp, podman mounts /dev and /dev/shm noexec): exit 1 naming every place it tried', async () => {
    const app = await play(volume(), false);
    expect(await exitCode(app)).toBe(1);
    const logs = await logsOf(app);
    expect(logs.stderr.join('\n')).toMatch(/cannot load the native addon from any of: \/dev\/shm .*; \/tmp \(EROFS.*; \/dev /);
  }, 120_000);

  test('with an emptyDir at /tmp: the manifest preStop command dumps, the next Pod on the same volume restores, the count continues', async () => {
    const hostVolume = volume();
    const template = statefulSetTemplate();
    const preStop = template.spec.containers[0]?.lifecycle?.preStop?.exec?.command;
    expect(preStop?.[0]).toBe('/usr/local/bin/stasis');
    const first = await play(hostVolume, true);
    await waitForTicks(first, 5);
    const hook = await run(PODMAN, ['exec', first, ...(preStop ?? [])], podmanEnv());
    expect(hook.code, `${hook.stdout}${hook.stderr}`).toBe(0);
    expect(await exitCode(first)).toBe(0);
    const one = await logsOf(first);
    expect(one.events.find((event) => event.msg === 'dump committed')?.generation, JSON.stringify(one.events)).toBe(1);
    expectRun(1, ticks(one.stdout));

    const second = await play(hostVolume, true);
    await waitForTicks(second, 3);
    await mustRun(PODMAN, ['kill', '--signal', 'KILL', second], podmanEnv());
    await exitCode(second);
    const two = await logsOf(second);
    expect(two.events.find((event) => event.msg === 'restored')?.generation, JSON.stringify(two.events)).toBe(1);
    expectRun(last(ticks(one.stdout)) + 1, ticks(two.stdout));
  }, 180_000);
});
