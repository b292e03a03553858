import { createCipheriv, createDecipheriv, createHash, randomBytes, type DecipherGCM, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, Readable, Transform, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createZstdCompress, createZstdDecompress } from 'node:zlib';
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

/** Reads `path`, compresses (and encrypts) it into the object `key`; sizes and hashes of both sides. */
export async function uploadFile(bucket: Pick<Bucket, 'upload'>, key: string, path: string, coding: Coding): Promise<Measured> {
  const plain = new Meter();
  const stored = new Meter();
  const body = new PassThrough();
  const piping = pipeline([createReadStream(path), plain.tap(), ...encodeStages(coding), stored.tap(), body]);
  const uploading = bucket.upload(key, body).catch((error: unknown) => {
    body.destroy(error as Error);
    throw error;
  });
  await Promise.all([piping, uploading]);
  return { size: plain.bytes, sha256: plain.digest(), storedSize: stored.bytes, storedSha256: stored.digest() };
}

/**
 * Fetches the object of `file` with ranged GETs, decrypts and decompresses it into
 * `target` (created owner-only), and checks both sha256 sums: DamagedObject when the
 * object or its content is not what the manifest recorded.
 */
export async function downloadFile(bucket: Pick<Bucket, 'ranges'>, key: string, file: RemoteFile, target: string, coding: Coding): Promise<void> {
  const plain = new Meter();
  const stored = new Meter();
  try {
    await pipeline([Readable.from(bucket.ranges(key, file.storedSize)), stored.tap(), ...decodeStages(coding), plain.tap(), createWriteStream(target, { flags: 'wx', mode: 0o600 })]);
  } catch (error) {
    // zlib's errors carry codes such as ERR__ZSTD_... or Z_DATA_ERROR: the bytes are bad
    const code = String((error as NodeJS.ErrnoException).code ?? '');
    if (code.startsWith('ERR_ZSTD') || code.startsWith('ERR__') || code.startsWith('Z_')) throw new DamagedObject(`${file.path} does not decompress: ${(error as Error).message}`);
    throw error;
  }
  if (stored.bytes !== file.storedSize || stored.digest() !== file.storedSha256) throw new DamagedObject(`object ${file.object} is not what was uploaded (${stored.bytes} bytes, sha256 differs or size ${file.storedSize} expected)`);
  const sha = plain.digest();
  if (plain.bytes !== file.size || sha !== file.sha256) throw new DamagedObject(`${file.path} is damaged: ${plain.bytes} bytes with sha256 ${sha}, expected ${file.size} bytes with ${file.sha256}`);
}
