/**
 * The image of Dockerfile.example (built by buildah, scripts/build-image.sh) under
 * containerd: a daemon of the test's own, `ctr image import` of the image's
 * docker-archive, `ctr run` with the capabilities of deploy/kubernetes, the counter
 * migrating through a bind-mounted volume. Never skipped: without root, containerd,
 * podman, buildah or dist/stasis it fails.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { counts, expectRun } from '../helpers/container.js';
import { Containerd, CtrContainer } from '../helpers/containerd.js';
import { buildImage, missingTools } from '../helpers/image.js';
import type { CapturedResult } from '../helpers/captured.js';

const containerd = new Containerd(join(tmpdir(), `stasis-containerd-${process.pid}`), `/run/stasis-e2e-containerd-${process.pid}`);
let image = '';
const running: CtrContainer[] = [];
const volumes: string[] = [];

beforeAll(async () => {
  const missing = missingTools('containerd e2e test', ['containerd', 'ctr', 'podman', 'buildah', 'runc']);
  if (missing) throw new Error(missing);
  const archive = buildImage({ archive: true });
  await containerd.start();
  await containerd.mustCtr(['image', 'import', archive], 10 * 60_000);
  image = (await containerd.mustCtr(['image', 'list', '--quiet'])).trim();
  expect(image).toMatch(/^localhost\/stasis-example:[0-9a-f]+$/);
}, 30 * 60_000);

afterEach(async () => {
  for (const container of running.splice(0)) await container.remove();
  for (const dir of volumes.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(() => containerd.stop(), 120_000);

function volume(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-containerd-volume-'));
  volumes.push(dir);
  return dir;
}

function start(hostVolume: string, env: Record<string, string> = {}): CtrContainer {
  const container = new CtrContainer(containerd, { image, volume: hostVolume, env });
  running.push(container);
  return container;
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');
const errs = (lines: readonly string[]): number[] => counts(lines, 'err');
const last = (numbers: readonly number[]): number => numbers.at(-1) ?? 0;

const eventOf = (result: CapturedResult, msg: string) => result.events.find((event) => event.msg === msg);

describe('containerd (runc shim v2) with the capabilities of deploy/kubernetes', () => {
  test('ctr task kill --signal SIGUSR2 dumps container 1; container 2 restores from the bind-mounted volume; stdout and stderr continue', async () => {
    const hostVolume = volume();
    const first = start(hostVolume);
    await first.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks');
    await first.kill('SIGUSR2');
    const one = await first.finished();
    expect(one.code, one.raw).toBe(0);
    expect(eventOf(one, 'dump committed')?.generation, one.raw).toBe(1);
    expect(eventOf(one, 'app started')?.pid, one.raw).toBe(10000);
    // containerd's default spec: no seccomp filter, so criu --unprivileged dumps with the two added capabilities
    expect(eventOf(one, 'checkpoints on')?.unprivileged, one.raw).toBe(true);
    expectRun(1, ticks(one.stdout));
    expectRun(1, errs(one.stderr));

    const second = start(hostVolume);
    await second.waitForStdout((lines) => ticks(lines).length >= 5, 'ticks after the restore');
    expect(second.event('restored')?.generation, second.events().map((event) => event.msg).join(',')).toBe(1);
    expect(second.event('app started')).toBeUndefined();
    await second.kill('SIGTERM');
    const two = await second.finished();
    // The app died of SIGTERM: stasis exits 128 + 15, and ctr run passes it on.
    expect(two.code, two.raw).toBe(143);
    expectRun(last(ticks(one.stdout)) + 1, ticks(two.stdout));
    expectRun(last(errs(one.stderr)) + 1, errs(two.stderr));
  }, 180_000);

  test('the preStop hook as ctr task exec (stasis checkpoint --exit) dumps; the next ctr run restores', async () => {
    const hostVolume = volume();
    const first = start(hostVolume);
    await first.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks');
    const hook = await containerd.ctr(['task', 'exec', '--exec-id', 'prestop', first.id, '/usr/local/bin/stasis', 'checkpoint', '--exit', '--timeout', '110s']);
    expect(hook.code, `${hook.stdout}${hook.stderr}`).toBe(0);
    expect(hook.stdout).toMatch(/checkpoint committed: generation 1/);
    const one = await first.finished();
    expect(one.code, one.raw).toBe(0);

    const second = start(hostVolume);
    await second.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore');
    expect(second.event('restored')?.generation).toBe(1);
    await second.kill('SIGKILL');
    const two = await second.finished();
    expectRun(last(ticks(one.stdout)) + 1, ticks(two.stdout));
  }, 180_000);
});
