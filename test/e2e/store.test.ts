/**
 * Checkpoints in S3-compatible object storage (STASIS_STORE), against a real Ceph RADOS
 * Gateway this file starts (test/helpers/s3.ts): containers whose STASIS_DIRs are
 * different and empty migrate through the store.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { counts, type Container } from '../helpers/container.js';
import { useLab } from '../helpers/lab.js';
import { useS3 } from '../helpers/s3.js';
import { fixture, poll, runStasis, stasisCheckpoint } from '../helpers/stasis.js';

const BUCKET = 'stasis-e2e';
const COUNTER = [fixture('counter.sh')];
const s3 = useS3();
const lab = useLab('stasis-store-');
const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');

beforeAll(async () => {
  await s3.createBucket(BUCKET);
});

/** A container with its own empty STASIS_DIR, storing to s3://BUCKET/PREFIX. */
function container(prefix: string, env: Record<string, string> = {}): Container {
  return lab.container(COUNTER, { ...s3.env(), STASIS_DIR: join(lab.tempDir(), 'staging'), STASIS_STORE: `s3://${BUCKET}/${prefix}`, ...env });
}

function expectContinuation(previous: readonly number[], next: readonly number[]): void {
  expect(next.length).toBeGreaterThan(0);
  expect(next[0]).toBe((previous.at(-1) ?? 0) + 1);
  next.forEach((n, i) => expect(n).toBe((next[0] ?? 0) + i));
}

/** Runs the counter in a fresh container until `minTicks`, dumps it in exit mode; what it printed and logged. */
async function dumpToStore(prefix: string, env: Record<string, string> = {}, minTicks = 5) {
  const c = container(prefix, env);
  await c.waitForStdout((lines) => ticks(lines).length >= minTicks, `${minTicks} ticks`);
  await c.signal('SIGUSR2');
  const result = await c.finished();
  expect(result.code, result.raw).toBe(0);
  return result;
}

const generationsIn = (keys: readonly string[], prefix: string): string[] =>
  [...new Set(keys.map((key) => key.slice(prefix.length + 1).split('/')[0] ?? '').filter((name) => name.startsWith('gen-')))].sort();

describe('migration through the object store', () => {
  test('exit-mode dump uploads zstd objects and a manifest; a container with another, empty STASIS_DIR restores it and continues', async () => {
    const prefix = 'migrate';
    const first = await dumpToStore(prefix);
    const uploaded = first.events.find((event) => event.msg === 'checkpoint uploaded');
    expect(uploaded, first.raw).toBeDefined();
    expect(uploaded?.bytes).toBeGreaterThan(0);
    expect(uploaded?.compressed_bytes).toBeGreaterThan(0);
    expect(uploaded?.compressed_bytes as number).toBeLessThan(uploaded?.bytes as number);
    expect(typeof uploaded?.upload_ms).toBe('number');
    // the app ended only after the upload: the upload is logged before stasis's exit
    const keys = await s3.keys(BUCKET, `${prefix}/`);
    const [id] = generationsIn(keys, prefix);
    expect(id).toMatch(/^gen-000001-[0-9a-f]{8}$/);
    expect(keys).toContain(`${prefix}/${id}/manifest.json`);
    expect(keys).toContain(`${prefix}/${id}/stasis.json.zst`);
    expect((await s3.getText(BUCKET, `${prefix}/current`)).trim()).toBe(id);
    const manifest = JSON.parse(await s3.getText(BUCKET, `${prefix}/${id}/manifest.json`));
    expect(manifest.compression).toBe('zstd');
    for (const file of manifest.files) expect(file.sha256).toMatch(/^[0-9a-f]{64}$/);

    const second = container(prefix);
    await second.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks in container 2');
    const downloaded = await second.waitForEvent('checkpoint downloaded from the object store');
    expect(downloaded.bytes).toBe(manifest.bytes);
    expect(downloaded.compressed_bytes).toBe(manifest.storedBytes);
    expect(typeof downloaded.download_ms).toBe('number');
    expect((await second.waitForEvent('restored')).generation).toBe(1);
    expect(second.event('app started')).toBeUndefined();
    await second.signal('SIGUSR2');
    const secondResult = await second.finished();
    expect(secondResult.code, secondResult.raw).toBe(0);
    expectContinuation(ticks(first.stdout), ticks(secondResult.stdout));
    expect(generationsIn(await s3.keys(BUCKET, `${prefix}/`), prefix).map((name) => name.slice(0, 10))).toEqual(['gen-000001', 'gen-000002']);

    const third = container(prefix);
    await third.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks in container 3');
    expect((await third.waitForEvent('restored')).generation).toBe(2);
    await third.signal('SIGTERM');
    const thirdResult = await third.finished();
    expect(thirdResult.code).toBe(143);
    expectContinuation(ticks(secondResult.stdout), ticks(thirdResult.stdout));
  });

  test('continue mode: `stasis checkpoint` answers after the upload, the app runs on, a new dump waits for the upload, STASIS_KEEP prunes remotely', async () => {
    const prefix = 'continue';
    const socket = join(lab.tempDir(), 'control.sock');
    const c = container(prefix, { STASIS_AFTER_DUMP: 'continue', STASIS_KEEP: '2', STASIS_SOCKET: socket, STASIS_COMPRESS: 'none' });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
    await poll('the control socket', () => (existsSync(socket) ? true : undefined), 15_000);
    for (let i = 1; i <= 3; i++) {
      const answer = await stasisCheckpoint(['--socket', socket]);
      expect(answer.code, answer.stderr).toBe(0);
      expect(answer.stdout).toMatch(new RegExp(`generation ${i}, .*; uploaded as ${prefix}/gen-00000${i}-[0-9a-f]{8} \\(`));
    }
    // a signal and the socket at once: the second dump starts only after the first upload
    await c.signal('SIGUSR2');
    const fourth = await stasisCheckpoint(['--socket', socket]);
    expect(fourth.code, fourth.stderr).toBe(0);
    const order = c
      .events()
      .filter((event) => ['dump started', 'checkpoint uploaded'].includes(event.msg))
      .map((event) => event.msg);
    for (let i = 0; i + 1 < order.length; i += 2) expect(order.slice(i, i + 2)).toEqual(['dump started', 'checkpoint uploaded']);
    const before = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= before + 3, 'ticks after the dumps');
    const remaining = generationsIn(await s3.keys(BUCKET, `${prefix}/`), prefix);
    expect(remaining).toHaveLength(2);
    // `stasis status` lists the remote generations too (here from another, empty STASIS_DIR)
    const status = await runStasis({ args: ['status'], env: { ...s3.env(), STASIS_DIR: join(lab.tempDir(), 'other'), STASIS_STORE: `s3://${BUCKET}/${prefix}` }, namespace: false });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`Object store: s3://${BUCKET}/${prefix} at ${s3.endpoint}`);
    expect(status.stdout).toMatch(new RegExp(`\\* +${remaining[1]} .* committed`));
    expect(status.stdout).toMatch(new RegExp(` ${remaining[0]} .* committed`));
    const manifest = JSON.parse(await s3.getText(BUCKET, `${prefix}/${remaining[1]}/manifest.json`));
    expect(manifest.compression).toBe('none');
    await c.signal('SIGTERM');
    expect((await c.finished()).code).toBe(143);
  });
});

describe('what is worth compressing', () => {
  test('a file of 8 MiB random bytes the app holds in /tmp is stored as is (zstd would not shrink it), the images compressed; it comes back the same', async () => {
    const prefix = 'random';
    // the file travels in the generation (files/tmp/blob); USR1 prints its sha256
    const app = ['sh', '-c', "head -c 8M /dev/urandom >/tmp/blob; exec 3</tmp/blob; trap 'echo sum $(sha256sum </tmp/blob)' USR1; i=0; while :; do i=$((i + 1)); echo tick $i; sleep 0.1; done"];
    const sums = (lines: readonly string[]): string[] => lines.filter((line) => line.startsWith('sum ')).map((line) => line.split(' ')[1] ?? '');
    const env = { ...s3.env(), STASIS_DIR: join(lab.tempDir(), 'staging'), STASIS_STORE: `s3://${BUCKET}/${prefix}` };
    const first = lab.container(app, env);
    await first.waitForStdout((lines) => ticks(lines).length >= 3, '3 ticks');
    await first.signal('SIGUSR1');
    await first.waitForStdout((lines) => sums(lines).length >= 1, 'the sum of /tmp/blob');
    await first.signal('SIGUSR2');
    const dumped = await first.finished();
    expect(dumped.code, dumped.raw).toBe(0);
    const [id] = generationsIn(await s3.keys(BUCKET, `${prefix}/`), prefix);
    const manifest = JSON.parse(await s3.getText(BUCKET, `${prefix}/${id}/manifest.json`));
    expect(manifest.compression).toBe('zstd');
    const files = manifest.files as { path: string; object: string; size: number; storedSize: number; compression?: string }[];
    const blob = files.find((file) => file.path.endsWith('tmp/blob'));
    expect(blob, JSON.stringify(files)).toMatchObject({ size: 8 << 20, storedSize: 8 << 20, compression: 'none' });
    expect(blob?.object).toBe(blob?.path);
    const images = files.filter((file) => file.path.endsWith('.img'));
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) {
      expect(image.object).toBe(`${image.path}.zst`);
      expect(image.compression).toBeUndefined();
    }

    const second = lab.container(app, { ...env, STASIS_DIR: join(lab.tempDir(), 'staging') });
    expect((await second.waitForEvent('restored')).generation).toBe(1);
    await second.signal('SIGUSR1');
    await second.waitForStdout((lines) => sums(lines).length >= 1, 'the sum of the restored /tmp/blob');
    expect(sums(second.stdout())[0]).toBe(sums(dumped.stdout)[0]);
    await second.signal('SIGTERM');
    expect((await second.finished()).code).toBe(143);
  });
});

describe('exit mode and writers', () => {
  test('preStop `stasis checkpoint --exit` and SIGTERM with STASIS_CHECKPOINT_ON_TERM answer and exit only after the remote commit', async () => {
    const prefix = 'prestop';
    const socket = join(lab.tempDir(), 'control.sock');
    const c = container(prefix, { STASIS_SOCKET: socket, STASIS_AFTER_DUMP: 'continue' });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
    await poll('the control socket', () => (existsSync(socket) ? true : undefined), 15_000);
    const answer = await stasisCheckpoint(['--exit', '--socket', socket]);
    expect(answer.code, answer.stderr).toBe(0);
    expect(answer.stdout).toMatch(new RegExp(`\\(exit\\); uploaded as ${prefix}/gen-000001-[0-9a-f]{8} `));
    const first = await c.finished();
    expect(first.code, first.raw).toBe(0);
    const uploadedAt = first.events.findIndex((event) => event.msg === 'checkpoint uploaded');
    const exitingAt = first.events.findIndex((event) => event.msg === 'exiting');
    expect(uploadedAt).toBeGreaterThanOrEqual(0);
    expect(uploadedAt).toBeLessThan(exitingAt);

    const second = container(prefix, { STASIS_CHECKPOINT_ON_TERM: 'true' });
    await second.waitForStdout((lines) => ticks(lines).length >= 3, 'restored ticks');
    expect(second.event('restored')?.generation).toBe(1);
    await second.signal('SIGTERM');
    const result = await second.finished();
    expect(result.code, result.raw).toBe(0);
    expect(result.events.some((event) => event.msg === 'checkpoint uploaded' && event.generation === 2)).toBe(true);
    expect(generationsIn(await s3.keys(BUCKET, `${prefix}/`), prefix).map((id) => id.slice(0, 10))).toEqual(['gen-000001', 'gen-000002']);
  });

  test('two writers of one prefix dumping at once: each generation under its own writer name, both complete, the newest restores', async () => {
    const prefix = 'two-writers';
    const writers = [container(prefix, { STASIS_KEEP: '5' }), container(prefix, { STASIS_KEEP: '5' })];
    await Promise.all(writers.map((c) => c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks')));
    await Promise.all(writers.map((c) => c.signal('SIGUSR2')));
    const results = await Promise.all(writers.map((c) => c.finished()));
    for (const result of results) expect(result.code, result.raw).toBe(0);
    const keys = await s3.keys(BUCKET, `${prefix}/`);
    const ids = generationsIn(keys, prefix);
    expect(ids).toHaveLength(2);
    expect(new Set(ids.map((id) => id.slice(-8))).size).toBe(2);
    for (const id of ids) {
      const manifest = JSON.parse(await s3.getText(BUCKET, `${prefix}/${id}/manifest.json`));
      for (const file of manifest.files) expect(keys).toContain(`${prefix}/${id}/${file.object}`);
    }
    // both gen 1 when they listed the prefix at the same moment, 1 and 2 when one saw the other's manifest
    const newest = Math.max(...ids.map((id) => Number(id.slice(4, 10))));
    const next = container(prefix);
    await next.waitForStdout((lines) => ticks(lines).length >= 2, 'restored ticks');
    expect(next.event('restored')?.generation).toBe(newest);
    await next.signal('SIGTERM');
    expect((await next.finished()).code).toBe(143);
  });
});

describe('template: checkpoint once, restore many', () => {
  test('three replicas with empty STASIS_DIRs and empty own prefixes start from one warm template checkpoint; their dumps go to their own prefixes', async () => {
    const template = 'template/warm';
    const warm = await dumpToStore(template, {}, 8);
    const warmKeys = await s3.keys(BUCKET, `${template}/`);
    const replicas = [1, 2, 3].map((n) =>
      container(`replicas/{hostname}/r${n}`, { STASIS_STORE_TEMPLATE: `s3://${BUCKET}/${template}` }),
    );
    await Promise.all(replicas.map((c) => c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks of a replica')));
    for (const replica of replicas) {
      const fetched = replica.event('checkpoint downloaded from the object store');
      expect(fetched?.store, replica.events().map((e) => e.msg).join(',')).toBe(`s3://${BUCKET}/${template}`);
      expect(replica.event('restored')?.generation).toBe(1);
      expect(replica.event('app started')).toBeUndefined();
      // warm: each continues where the template's app stopped, none counted from 1
      expectContinuation(ticks(warm.stdout), ticks(replica.stdout()));
    }
    await Promise.all(replicas.map((c) => c.signal('SIGUSR2')));
    const results = await Promise.all(replicas.map((c) => c.finished()));
    for (const [i, result] of results.entries()) {
      expect(result.code, result.raw).toBe(0);
      const own = `replicas/${hostname()}/r${i + 1}`;
      const uploaded = result.events.find((event) => event.msg === 'checkpoint uploaded');
      expect(uploaded?.store).toBe(`s3://${BUCKET}/${own}`);
      expect(generationsIn(await s3.keys(BUCKET, `${own}/`), own).map((id) => id.slice(0, 10))).toEqual(['gen-000002']);
    }
    // read-only: the template holds exactly what it held
    expect(await s3.keys(BUCKET, `${template}/`)).toEqual(warmKeys);
  });
});

describe('stasis doctor with a store', () => {
  interface DoctorJson {
    checks: { name: string; status: string; detail: string }[];
  }
  const doctor = async (store: string): Promise<DoctorJson> => {
    const result = await runStasis({ args: ['doctor', '--json'], env: { ...s3.env(), STASIS_DIR: join(lab.tempDir(), 'dir'), STASIS_STORE: store }, namespace: false });
    return JSON.parse(result.stdout) as DoctorJson;
  };
  const storeChecks = (json: DoctorJson): string[] =>
    json.checks.filter((check) => ['object store', 'store write', 'clock skew'].includes(check.name)).map((check) => `${check.name}: ${check.status}`);

  test('checks endpoint, credentials and bucket, writes, reads and deletes a probe object, and compares clocks', async () => {
    const json = await doctor(`s3://${BUCKET}/doctor`);
    expect(storeChecks(json)).toEqual(['object store: ok', 'store write: ok', 'clock skew: ok']);
    expect(await s3.keys(BUCKET, 'doctor/')).toEqual([]);
    const missing = await doctor('s3://no-such-bucket/x');
    expect(storeChecks(missing)).toEqual(['object store: FAIL', 'store write: skip', 'clock skew: ok']);
    expect(missing.checks.find((check) => check.name === 'object store')?.detail).toContain('bucket no-such-bucket does not exist');
  });
});
