/**
 * The image of Dockerfile.example, built by buildah (scripts/build-image.sh), run by
 * podman with runc: the securityContext of deploy/kubernetes as podman flags, the
 * checkpoint volume shared by consecutive `podman run` containers, what podman's
 * logs show. Never skipped: without root, podman, buildah or dist/stasis it fails.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { counts } from '../helpers/container.js';
import { buildImage, cleanupContainers, missingTools } from '../helpers/image.js';
import { PodmanContainer, type PodmanRunOptions } from '../helpers/podman.js';
import type { CapturedResult } from '../helpers/captured.js';
import type { LogEvent } from '../helpers/stasis.js';

let image = '';
const running: PodmanContainer[] = [];
const volumes: string[] = [];

beforeAll(() => {
  const missing = missingTools('podman e2e test', ['podman', 'buildah', 'runc']);
  if (missing) throw new Error(missing);
  image = buildImage();
}, 30 * 60_000);

afterEach(() => {
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

function expectRun(first: number, numbers: readonly number[]): void {
  expect(numbers.length).toBeGreaterThan(0);
  expect(numbers).toEqual(numbers.map((_, i) => first + i));
}

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
