import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { compressionFor, DamagedObject, downloadFile, SAMPLE_FROM_BYTES, uploadFile, worthCompressing, type Coding } from '../../src/store/codec.js';

/** The two object operations the codec uses, in memory. */
class MemoryBucket {
  readonly objects = new Map<string, Buffer>();

  async upload(key: string, body: Readable): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    this.objects.set(key, Buffer.concat(chunks));
  }

  async *ranges(key: string, size: number): AsyncGenerator<Buffer> {
    const object = this.objects.get(key) ?? Buffer.alloc(0);
    for (let start = 0; start < size; start += 1000) yield object.subarray(start, Math.min(size, start + 1000));
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fileWith(content: Buffer): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-codec-'));
  dirs.push(dir);
  const path = join(dir, 'pages-1.img');
  writeFileSync(path, content);
  return { dir, path };
}

const KEY = Buffer.alloc(32, 3);
const content = Buffer.concat([Buffer.alloc(50_000, 7), randomBytes(20_000)]);

describe('upload and download of one file', () => {
  test.each<[string, Coding]>([
    ['zstd', { compression: 'zstd', level: 3, key: null }],
    ['none', { compression: 'none', level: 3, key: null }],
    ['zstd + AES-256-GCM', { compression: 'zstd', level: 3, key: KEY }],
    ['AES-256-GCM alone', { compression: 'none', level: 3, key: KEY }],
  ])('%s: what comes back is what went up, both sha256 sums recorded', async (_name, coding) => {
    const { dir, path } = fileWith(content);
    const bucket = new MemoryBucket();
    const measured = await uploadFile(bucket, 'k', path, coding);
    const stored = bucket.objects.get('k') as Buffer;
    expect(measured.size).toBe(content.length);
    expect(measured.storedSize).toBe(stored.length);
    if (coding.compression === 'zstd') expect(stored.length).toBeLessThan(content.length);
    if (coding.key !== null) expect(stored.includes(content.subarray(0, 64))).toBe(false);
    const target = join(dir, 'back.img');
    await downloadFile(bucket, 'k', { path: 'pages-1.img', object: 'k', ...measured }, target, coding);
    expect(readFileSync(target).equals(content)).toBe(true);
    expect(statSync(target).mode & 0o777).toBe(0o600);
  });

  test.each<[string, Coding]>([
    ['zstd', { compression: 'zstd', level: 3, key: null }],
    ['none', { compression: 'none', level: 3, key: null }],
    ['encrypted', { compression: 'zstd', level: 3, key: KEY }],
  ])('%s: one changed byte in the store is a DamagedObject', async (_name, coding) => {
    const { dir, path } = fileWith(content);
    const bucket = new MemoryBucket();
    const measured = await uploadFile(bucket, 'k', path, coding);
    const stored = bucket.objects.get('k') as Buffer;
    stored.writeUInt8(stored.readUInt8(stored.length >> 1) ^ 1, stored.length >> 1);
    await expect(downloadFile(bucket, 'k', { path: 'pages-1.img', object: 'k', ...measured }, join(dir, 'back.img'), coding)).rejects.toBeInstanceOf(DamagedObject);
  });

  test('another key fails the AES-GCM authentication', async () => {
    const { dir, path } = fileWith(content);
    const bucket = new MemoryBucket();
    const coding: Coding = { compression: 'none', level: 3, key: KEY };
    const measured = await uploadFile(bucket, 'k', path, coding);
    const download = downloadFile(bucket, 'k', { path: 'pages-1.img', object: 'k', ...measured }, join(dir, 'back.img'), { ...coding, key: Buffer.alloc(32, 4) });
    await expect(download).rejects.toThrow(/AES-GCM authentication/);
  });

  test('an empty file round-trips, encrypted too', async () => {
    const { dir, path } = fileWith(Buffer.alloc(0));
    const bucket = new MemoryBucket();
    const coding: Coding = { compression: 'zstd', level: 3, key: KEY };
    const measured = await uploadFile(bucket, 'k', path, coding);
    await downloadFile(bucket, 'k', { path: 'x', object: 'k', ...measured }, join(dir, 'back.img'), coding);
    expect(readFileSync(join(dir, 'back.img')).length).toBe(0);
  });
});

describe('which files are worth compressing', () => {
  const zstd = { compression: 'zstd', level: 3 } as const;

  test('pure: samples must shrink by at least 10 %', () => {
    expect(worthCompressing(1000, 890)).toBe(true);
    expect(worthCompressing(1000, 900)).toBe(false);
    expect(worthCompressing(1000, 960)).toBe(false);
    expect(worthCompressing(1000, 1010)).toBe(false);
    expect(worthCompressing(0, 0)).toBe(true);
  });

  test('a big file of random bytes (memory zstd cannot shrink) is stored as is', async () => {
    const { path } = fileWith(randomBytes(SAMPLE_FROM_BYTES + 4096));
    expect(await compressionFor(path, SAMPLE_FROM_BYTES + 4096, zstd)).toBe('none');
  });

  test('a big file that is random only at its start is still compressed: samples are spread over the file', async () => {
    const size = SAMPLE_FROM_BYTES * 2;
    const { path } = fileWith(Buffer.concat([randomBytes(512 << 10), Buffer.alloc(size - (512 << 10), 9)]));
    expect(await compressionFor(path, size, zstd)).toBe('zstd');
  });

  test('a page image of random memory that starts with a few compressible pages is stored as is', async () => {
    const size = SAMPLE_FROM_BYTES * 4;
    const { path } = fileWith(Buffer.concat([Buffer.alloc(256 << 10, 0), randomBytes(size - (256 << 10))]));
    expect(await compressionFor(path, size, zstd)).toBe('none');
  });

  test('small files are compressed without a sample; STASIS_COMPRESS=none is never overridden', async () => {
    const { path } = fileWith(randomBytes(1000));
    expect(await compressionFor(path, 1000, zstd)).toBe('zstd');
    const big = fileWith(Buffer.alloc(SAMPLE_FROM_BYTES, 1));
    expect(await compressionFor(big.path, SAMPLE_FROM_BYTES, { compression: 'none', level: 3 })).toBe('none');
  });
});
