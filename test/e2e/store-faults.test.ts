/**
 * Object-store faults against a real Ceph RADOS Gateway (test/helpers/s3.ts): a missing
 * bucket, wrong credentials, an endpoint nobody listens on, the gateway killed with an
 * upload or a restore's request in flight, a damaged remote generation, and encryption
 * keys. Each gives a clear message; the previous remote generation stays intact; a dump
 * leaves the app running and a restore falls back to an older generation or a fresh start.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { counts, type Container } from '../helpers/container.js';
import { useLab } from '../helpers/lab.js';
import { useS3 } from '../helpers/s3.js';
import { fixture, poll, runStasis } from '../helpers/stasis.js';

const BUCKET = 'stasis-faults';
const COUNTER = [fixture('counter.sh')];
const PYTHON = '/usr/bin/python3';
const s3 = useS3();
const lab = useLab('stasis-store-faults-');
const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');

beforeAll(async () => {
  await s3.createBucket(BUCKET);
});

function container(store: string, env: Record<string, string> = {}, command: readonly string[] = COUNTER): Container {
  return lab.container(command, { ...s3.env(), STASIS_DIR: join(lab.tempDir(), 'staging'), STASIS_STORE: store, ...env });
}

/** A first good generation in `prefix`: what must stay intact. Returns its manifest's key and text. */
async function goodGeneration(prefix: string, env: Record<string, string> = {}, command: readonly string[] = COUNTER): Promise<{ key: string; text: string; lastTick: number }> {
  const c = container(`s3://${BUCKET}/${prefix}`, env, command);
  await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
  await c.signal('SIGUSR2');
  const result = await c.finished();
  expect(result.code, result.raw).toBe(0);
  const key = (await s3.keys(BUCKET, `${prefix}/`)).find((name) => name.endsWith('/manifest.json'));
  expect(key).toBeDefined();
  return { key: key as string, text: await s3.getText(BUCKET, key as string), lastTick: ticks(result.stdout).at(-1) ?? 0 };
}

/** Dumps in exit mode with the store failing: the app must keep running, with a clear message. */
async function failingExitDump(c: Container, words: string): Promise<void> {
  await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
  await c.signal('SIGUSR2');
  const failed = await c.waitForEvent('upload to the object store failed; the previous remote generation is intact');
  expect(failed.error).toContain(words);
  await c.waitForEvent('dump not uploaded; the app keeps running');
  const at = ticks(c.stdout()).at(-1) ?? 0;
  await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 3, 'ticks after the failed upload');
  await c.signal('SIGTERM');
  expect((await c.finished()).code).toBe(143);
}

async function expectFreshStart(c: Container, words: string | RegExp): Promise<void> {
  await c.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks');
  expect(ticks(c.stdout())[0]).toBe(1);
  const refused = c.event('cannot restore from the object store; restoring from STASIS_DIR or starting fresh');
  expect(String(refused?.error), c.events().map((e) => e.msg).join(',')).toMatch(words);
  await c.signal('SIGTERM');
  expect((await c.finished()).code).toBe(143);
}

describe('store faults at dump time: the app keeps running, the previous remote generation is intact', () => {
  test('bucket missing', async () => {
    await failingExitDump(container('s3://no-such-bucket/x'), 'bucket no-such-bucket does not exist');
  });

  test('wrong credentials (restore starts fresh, dump fails), the good generation untouched', async () => {
    const good = await goodGeneration('creds');
    const c = container(`s3://${BUCKET}/creds`, { AWS_SECRET_ACCESS_KEY: 'wrong-secret-key-000000000000000000000' });
    await expectFreshStart(c, 'credentials were refused');
    await failingExitDump(container(`s3://${BUCKET}/creds`, { AWS_SECRET_ACCESS_KEY: 'wrong-secret-key-000000000000000000000' }), 'SignatureDoesNotMatch');
    expect(await s3.getText(BUCKET, good.key)).toBe(good.text);
  });

  test('endpoint unreachable', async () => {
    const unreachable = { STASIS_S3_ENDPOINT: 'http://127.0.0.1:9' };
    await expectFreshStart(container(`s3://${BUCKET}/nowhere`, unreachable), 'cannot reach the object store at http://127.0.0.1:9');
    await failingExitDump(container(`s3://${BUCKET}/nowhere`, unreachable), 'cannot reach the object store');
  });

  test('the gateway is killed in the middle of an upload: the dump fails clearly, the app runs on, the older generation still restores', async () => {
    const prefix = 'killed-upload';
    // 96 MiB of random bytes, uncompressed: its upload takes over a second here (about 70 MiB/s)
    const big = [PYTHON, fixture('big-counter.py'), '96', '8'];
    const env = { STASIS_COMPRESS: 'none' };
    const good = await goodGeneration(prefix, env, big);
    const c = container(`s3://${BUCKET}/${prefix}`, { ...env, STASIS_AFTER_DUMP: 'continue' }, big);
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
    expect(c.event('restored')?.generation).toBe(1);
    let failed;
    try {
      await c.signal('SIGUSR2');
      await c.waitForEvent('upload started');
      s3.pauseGateway();
      await s3.killGateway();
      // the gateway comes back only after the upload failed: retries must not reach it
      failed = await c.waitForEvent('upload to the object store failed; the previous remote generation is intact');
    } finally {
      await s3.startGateway();
    }
    expect(failed.error).toMatch(/cannot reach the object store|did not answer/);
    const at = ticks(c.stdout()).at(-1) ?? 0;
    await c.waitForStdout((lines) => (ticks(lines).at(-1) ?? 0) >= at + 3, 'ticks after the failed upload');
    await c.signal('SIGTERM');
    expect((await c.finished()).code).toBe(143);
    expect(await s3.getText(BUCKET, good.key)).toBe(good.text);
    const manifests = (await s3.keys(BUCKET, `${prefix}/`)).filter((key) => key.endsWith('/manifest.json'));
    expect(manifests).toEqual([good.key]);
    const next = container(`s3://${BUCKET}/${prefix}`, env, big);
    await next.waitForStdout((lines) => ticks(lines).length >= 2, 'restored ticks');
    expect(next.event('restored')?.generation).toBe(1);
    expect(ticks(next.stdout())[0]).toBe(good.lastTick + 1);
    await next.signal('SIGTERM');
    expect((await next.finished()).code).toBe(143);
  });

  test('the gateway is killed in the middle of a download: the partial download is removed, a fresh start, nothing quarantined', async () => {
    const prefix = 'killed-download';
    // 160 MiB uncompressed: its download takes about a second here
    const big = [PYTHON, fixture('big-counter.py'), '160', '8'];
    const env = { STASIS_COMPRESS: 'none' };
    const good = await goodGeneration(prefix, env, big);
    const dir = join(lab.tempDir(), 'staging');
    const c = lab.container(big, { ...s3.env(), ...env, STASIS_DIR: dir, STASIS_STORE: `s3://${BUCKET}/${prefix}` });
    try {
      await c.waitForEvent('download started');
      s3.pauseGateway();
      await s3.killGateway();
      await c.waitForEvent('cannot restore from the object store; restoring from STASIS_DIR or starting fresh');
    } finally {
      await s3.startGateway();
    }
    expect(c.event('checkpoint downloaded from the object store')).toBeUndefined();
    // what the cut connection looks like depends on where the transfer was: never "damaged"
    await expectFreshStart(c, /cannot reach the object store|did not answer|ShortRead|object store error/);
    expect(c.event('remote checkpoint damaged, quarantined; trying an older one')).toBeUndefined();
    expect(readdirSync(dir).filter((name) => name.startsWith('.incoming') || name.startsWith('gen-'))).toEqual([]);
    expect(await s3.getText(BUCKET, good.key)).toBe(good.text);
  });

  test("the gateway is killed with a restore's request in flight: a fresh start, and the generation is not quarantined", async () => {
    const prefix = 'killed-restore';
    const good = await goodGeneration(prefix);
    s3.pauseGateway();
    let c: Container;
    try {
      c = container(`s3://${BUCKET}/${prefix}`);
      await c.waitForEvent('looking for a checkpoint in the object store');
      await s3.killGateway();
      await c.waitForEvent('cannot restore from the object store; restoring from STASIS_DIR or starting fresh');
    } finally {
      await s3.startGateway();
    }
    await expectFreshStart(c, 'cannot reach the object store');
    expect(await s3.getText(BUCKET, good.key)).toBe(good.text);
  });
});

describe('staging', () => {
  test('STASIS_DIR fills up during the download: the partial download is removed, the message says the volume is full, a fresh start; the remote generation is not quarantined', async () => {
    const prefix = 'staging-full';
    const good = await goodGeneration(prefix, {}, [PYTHON, fixture('big-counter.py'), '8', '1']);
    const mount = lab.tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mount]);
    try {
      const dir = join(mount, 'staging');
      const c = lab.container([PYTHON, fixture('big-counter.py'), '8', '1'], { ...s3.env(), STASIS_DIR: dir, STASIS_STORE: `s3://${BUCKET}/${prefix}` });
      await c.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks');
      expect(ticks(c.stdout())[0]).toBe(1);
      const refused = c.event('cannot restore from the object store; restoring from STASIS_DIR or starting fresh');
      expect(refused?.error, c.events().map((e) => e.msg).join(',')).toMatch(/volume is full/);
      expect(readdirSync(dir).filter((name) => name.startsWith('.incoming') || name.startsWith('gen-'))).toEqual([]);
      await c.signal('SIGTERM');
      expect((await c.finished()).code).toBe(143);
    } finally {
      execFileSync('umount', ['-l', mount]);
    }
    expect(await s3.getText(BUCKET, good.key)).toBe(good.text);
  });
});

describe('damaged remote generations', () => {
  test('a changed object: the generation goes to quarantine/ with the reason, the next older one is restored', async () => {
    const prefix = 'damaged';
    const c = container(`s3://${BUCKET}/${prefix}`, { STASIS_AFTER_DUMP: 'continue', STASIS_KEEP: '3' });
    await c.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks');
    await c.signal('SIGUSR2');
    await c.waitForEvent('checkpoint uploaded');
    const first = c.events().filter((event) => event.msg === 'checkpoint uploaded').length;
    await c.signal('SIGUSR2');
    await poll('the second upload', () => (c.events().filter((event) => event.msg === 'checkpoint uploaded').length > first ? true : undefined), 30_000);
    await c.signal('SIGTERM');
    expect((await c.finished()).code).toBe(143);
    const keys = await s3.keys(BUCKET, `${prefix}/`);
    const newest = keys.filter((key) => /gen-000002-[0-9a-f]{8}\/pages-.*\.img\.zst$/.test(key))[0] as string;
    expect(newest).toBeDefined();
    const bytes = await s3.getBytes(BUCKET, newest);
    const middle = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
    await s3.put(BUCKET, newest, bytes);

    const next = container(`s3://${BUCKET}/${prefix}`);
    await next.waitForStdout((lines) => ticks(lines).length >= 2, 'restored ticks');
    const damaged = next.event('remote checkpoint damaged, quarantined; trying an older one');
    expect(damaged?.reason, next.events().map((e) => e.msg).join(',')).toMatch(/not what was uploaded|does not decompress|is damaged/);
    expect(next.event('restored')?.generation).toBe(1);
    const id = newest.split('/')[1] as string;
    expect(await s3.getText(BUCKET, `${prefix}/quarantine/${id}/reason.txt`)).toContain(damaged?.reason as string);
    expect((await s3.keys(BUCKET, `${prefix}/${id}/`))).toEqual([]);
    await next.signal('SIGTERM');
    expect((await next.finished()).code).toBe(143);
  });
});

describe('encryption (STASIS_ENCRYPTION_KEY_FILE)', () => {
  test('objects are AES-256-GCM encrypted; the right key restores, a wrong key is a clear error and quarantines nothing, a missing key file turns checkpoints off', async () => {
    const dir = lab.tempDir();
    const key = join(dir, 'key');
    const other = join(dir, 'other');
    writeFileSync(key, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    writeFileSync(other, `${'cd'.repeat(32)}\n`, { mode: 0o600 });
    const prefix = 'encrypted';
    const good = await goodGeneration(prefix, { STASIS_ENCRYPTION_KEY_FILE: key });
    const manifest = JSON.parse(good.text);
    expect(manifest.encryption).toBe('aes-256-gcm');
    const stasisJson = (await s3.keys(BUCKET, `${prefix}/`)).find((name) => name.endsWith('/stasis.json.zst.enc')) as string;
    expect((await s3.getBytes(BUCKET, stasisJson)).toString('latin1')).not.toContain('fingerprint');

    await expectFreshStart(container(`s3://${BUCKET}/${prefix}`, { STASIS_ENCRYPTION_KEY_FILE: other }), 'encrypted with another key');
    await expectFreshStart(container(`s3://${BUCKET}/${prefix}`), 'is encrypted: set STASIS_ENCRYPTION_KEY_FILE');
    expect(await s3.getText(BUCKET, good.key)).toBe(good.text);

    const right = container(`s3://${BUCKET}/${prefix}`, { STASIS_ENCRYPTION_KEY_FILE: key });
    await right.waitForStdout((lines) => ticks(lines).length >= 2, 'restored ticks');
    expect(ticks(right.stdout())[0]).toBe(good.lastTick + 1);
    await right.signal('SIGTERM');
    expect((await right.finished()).code).toBe(143);

    const missing = container(`s3://${BUCKET}/${prefix}`, { STASIS_ENCRYPTION_KEY_FILE: join(dir, 'absent') });
    await missing.waitForStdout((lines) => ticks(lines).length >= 2, 'fresh ticks');
    expect(missing.event('checkpoints are off: the object store cannot be used')?.reason).toMatch(/STASIS_ENCRYPTION_KEY_FILE .*absent: cannot read it \(ENOENT\)/);
    await missing.signal('SIGTERM');
    expect((await missing.finished()).code).toBe(143);
  });
});

describe('configuration that only works together', () => {
  test('STASIS_STORE without STASIS_DIR: exit 2 naming both, nothing started', async () => {
    const result = await runStasis({ args: ['--', 'sh', '-c', 'echo APP-RAN'], env: { STASIS_STORE: `s3://${BUCKET}/x` }, namespace: false });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/STASIS_STORE="s3:\/\/stasis-faults\/x" is not valid: expected STASIS_DIR to be set too/);
  });
});
