import { createCipheriv, createDecipheriv, createHash, randomBytes, type DecipherGCM, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, Readable, Transform, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createZstdCompress, createZstdDecompress, zstdCompressSync } from 'node:zlib';
import type { Bucket } from './objects.js';
import type { Compression, RemoteFile } from './manifest.js';

export interface Coding {
  readonly compression: Compression;
  /** zstd level, 1 (fast) to 19 */
  readonly level: number;
  /** AES-256 key; null = not encrypted */
  readonly key: Buffer | null;
}

/** Bytes and sha256 of what flows through a stream. */
class Meter {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');

  tap(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.bytes += chunk.length;
        this.hash.update(chunk);
        done(null, chunk);
      },
    });
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM: a random IV first, the ciphertext, the 16-byte tag last. */
function encrypt(key: Buffer): Transform {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  let started = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const head = started ? [] : [iv];
      started = true;
      done(null, Buffer.concat([...head, cipher.update(chunk)]));
    },
    flush(done) {
      const head = started ? [] : [iv];
      done(null, Buffer.concat([...head, cipher.final(), cipher.getAuthTag()]));
    },
  });
}

/** Fails at the end (tag mismatch) when the key is wrong or a byte changed. */
function decrypt(key: Buffer): Transform {
  let pending = Buffer.alloc(0);
  let decipher: DecipherGCM | null = null;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      pending = Buffer.concat([pending, chunk]);
      if (decipher === null) {
        if (pending.length < IV_BYTES) return done();
        decipher = createDecipheriv('aes-256-gcm', key, pending.subarray(0, IV_BYTES));
        pending = pending.subarray(IV_BYTES);
      }
      // the last TAG_BYTES may be the tag: hold them back until the end
      const ready = pending.length - TAG_BYTES;
      if (ready <= 0) return done();
      const out = decipher.update(pending.subarray(0, ready));
      pending = pending.subarray(ready);
      done(null, out);
    },
    flush(done) {
      if (decipher === null || pending.length !== TAG_BYTES) return done(new DamagedObject('the encrypted object is truncated'));
      try {
        decipher.setAuthTag(pending);
        done(null, decipher.final());
      } catch {
        done(new DamagedObject('the encrypted object fails its AES-GCM authentication (changed or truncated)'));
      }
    },
  });
}

/** The object is not what was uploaded: its generation is damaged. */
export class DamagedObject extends Error {}

function encodeStages(coding: Coding): Duplex[] {
  const stages: Duplex[] = [];
  if (coding.compression === 'zstd') stages.push(createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: coding.level } }));
  if (coding.key !== null) stages.push(encrypt(coding.key));
  return stages;
}

function decodeStages(coding: Coding): Duplex[] {
  const stages: Duplex[] = [];
  if (coding.key !== null) stages.push(decrypt(coding.key));
  if (coding.compression === 'zstd') stages.push(createZstdDecompress());
  return stages;
}

export type Measured = Pick<RemoteFile, 'size' | 'sha256' | 'storedSize' | 'storedSha256'>;

/** Files smaller than this are compressed without a sample: compressing them costs little. */
export const SAMPLE_FROM_BYTES = 4 << 20;
const SAMPLES = 16;
const SAMPLE_BYTES = 64 << 10;
/**
 * zstd must save at least 10 % of the samples, else the file is stored as is: below
 * that, its CPU (~120-140 MiB/s per thread on a 2-vCPU VM) costs more time than the
 * saved bytes, and one compressible sample (a page image starts with the app's small
 * mappings) must not decide for a file of random memory.
 */
const WORTH = 0.9;

/** Pure: whether compressed samples are small enough for the whole file to be worth compressing. */
export function worthCompressing(sampled: number, compressed: number): boolean {
  return sampled === 0 || compressed < sampled * WORTH;
}

/**
 * The compression for one file: zstd unless samples spread over a big file do not shrink
 * (random or already compressed memory). Compressing those costs CPU for nothing, at
 * ~150 MiB/s on a 2-vCPU VM, on the dump's path to the remote commit.
 */
export async function compressionFor(path: string, size: number, coding: Pick<Coding, 'compression' | 'level'>): Promise<Compression> {
  if (coding.compression === 'none' || size < SAMPLE_FROM_BYTES) return coding.compression;
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(SAMPLES * SAMPLE_BYTES);
    let sampled = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const at = Math.floor(((size - SAMPLE_BYTES) * i) / (SAMPLES - 1));
      sampled += (await file.read(buffer, sampled, SAMPLE_BYTES, at)).bytesRead;
    }
    const compressed = zstdCompressSync(buffer.subarray(0, sampled), { params: { [constants.ZSTD_c_compressionLevel]: coding.level } }).length;
    return worthCompressing(sampled, compressed) ? 'zstd' : 'none';
  } finally {
    await file.close();
  }
}

/** Reads `path`, compresses (and encrypts) it into the object `key`; sizes and hashes of both sides. */
export async function uploadFile(bucket: Pick<Bucket, 'upload'>, key: string, path: string, coding: Coding): Promise<Measured> {
  const plain = new Meter();
  const stages = encodeStages(coding);
  // stored bytes = plain bytes without a stage: one hash is enough
  const stored = stages.length === 0 ? plain : new Meter();
  const body = new PassThrough();
  const piping = pipeline([createReadStream(path), plain.tap(), ...stages, ...(stored === plain ? [] : [stored.tap()]), body]);
  const uploading = bucket.upload(key, body).catch((error: unknown) => {
    body.destroy(error as Error);
    throw error;
  });
  await Promise.all([piping, uploading]);
  const sha256 = plain.digest();
  return { size: plain.bytes, sha256, storedSize: stored.bytes, storedSha256: stored === plain ? sha256 : stored.digest() };
}

/**
 * Fetches the object of `file` with ranged GETs, decrypts and decompresses it into
 * `target` (created owner-only), and checks both sha256 sums: DamagedObject when the
 * object or its content is not what the manifest recorded.
 */
export async function downloadFile(bucket: Pick<Bucket, 'ranges'>, key: string, file: RemoteFile, target: string, coding: Coding): Promise<void> {
  const stages = decodeStages(coding);
  const plain = new Meter();
  const stored = stages.length === 0 ? plain : new Meter();
  try {
    await pipeline([Readable.from(bucket.ranges(key, file.storedSize)), ...(stored === plain ? [] : [stored.tap()]), ...stages, plain.tap(), createWriteStream(target, { flags: 'wx', mode: 0o600 })]);
  } catch (error) {
    // zlib's errors carry codes such as ERR__ZSTD_... or Z_DATA_ERROR: the bytes are bad
    const code = String((error as NodeJS.ErrnoException).code ?? '');
    if (code.startsWith('ERR_ZSTD') || code.startsWith('ERR__') || code.startsWith('Z_')) throw new DamagedObject(`${file.path} does not decompress: ${(error as Error).message}`);
    throw error;
  }
  const sha = plain.digest();
  const storedSha = stored === plain ? sha : stored.digest();
  if (stored.bytes !== file.storedSize || storedSha !== file.storedSha256) throw new DamagedObject(`object ${file.object} is not what was uploaded (${stored.bytes} bytes, sha256 differs or size ${file.storedSize} expected)`);
  if (plain.bytes !== file.size || sha !== file.sha256) throw new DamagedObject(`${file.path} is damaged: ${plain.bytes} bytes with sha256 ${sha}, expected ${file.size} bytes with ${file.sha256}`);
}
