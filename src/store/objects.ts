import type { Readable } from 'node:stream';
import { CopyObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Listed } from './manifest.js';

/** Parts of a multipart upload and ranges of a download. */
export const PART_BYTES = 16 * 2 ** 20;
/** Parts or ranges in flight per object. */
export const PARTS_IN_FLIGHT = 4;

/** A ranged GET answered with fewer bytes than asked for (the connection ended early). */
export class ShortRead extends Error {
  override readonly name = 'ShortRead';
}

/** The object in the store has another size than the manifest recorded. */
export class DamagedSize extends Error {
  override readonly name = 'DamagedSize';
}

/** The object operations stasis uses, on one bucket. */
export class Bucket {
  readonly client: S3Client;
  readonly name: string;

  constructor(client: S3Client, name: string) {
    this.client = client;
    this.name = name;
  }

  async exists(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.name }));
  }

  /** Every object under `prefix/`, named relative to it. */
  async list(prefix: string): Promise<Listed[]> {
    const base = prefix === '' ? '' : `${prefix}/`;
    const listed: Listed[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: base, ContinuationToken: token }));
      for (const entry of page.Contents ?? []) {
        if (entry.Key === undefined) continue;
        listed.push({ name: entry.Key.slice(base.length), size: entry.Size ?? 0, modified: entry.LastModified?.getTime() ?? 0 });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return listed;
  }

  async getBytes(key: string, range?: { readonly start: number; readonly end: number }): Promise<Buffer> {
    const answer = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
    if (answer.Body === undefined) return Buffer.alloc(0);
    return Buffer.from(await answer.Body.transformToByteArray());
  }

  /**
   * Bytes start..end of an object of `size` bytes. The object's real size (Content-Range)
   * tells a changed object (DamagedSize: the generation is damaged) from a connection
   * cut mid-body (ShortRead: the network's fault, nothing is quarantined).
   */
  private async getRange(key: string, start: number, end: number, size: number): Promise<Buffer> {
    const answer = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key, Range: `bytes=${start}-${end}` }));
    const total = Number(/\/(\d+)$/.exec(answer.ContentRange ?? '')?.[1] ?? size);
    if (total !== size) throw new DamagedSize(`${key} is ${total} bytes, the manifest says ${size}`);
    const bytes = answer.Body === undefined ? Buffer.alloc(0) : Buffer.from(await answer.Body.transformToByteArray());
    if (bytes.length !== end - start + 1) throw new ShortRead(`${key}: bytes ${start}-${end} came back as ${bytes.length} bytes`);
    return bytes;
  }

  async put(key: string, body: Buffer | string): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body }));
  }

  /** Multipart (or one PUT when small) from a stream, PARTS_IN_FLIGHT parts at a time. */
  async upload(key: string, body: Readable): Promise<void> {
    const upload = new Upload({ client: this.client, params: { Bucket: this.name, Key: key, Body: body }, partSize: PART_BYTES, queueSize: PARTS_IN_FLIGHT, leavePartsOnError: false });
    await upload.done();
  }

  async copy(from: string, to: string): Promise<void> {
    await this.client.send(new CopyObjectCommand({ Bucket: this.name, Key: to, CopySource: `${this.name}/${from.split('/').map(encodeURIComponent).join('/')}` }));
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.client.send(new DeleteObjectsCommand({ Bucket: this.name, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
    }
  }

  /**
   * The object in order, fetched as ranges with PARTS_IN_FLIGHT GETs in flight. A failed
   * range fails the iteration; the others' failures are caught so none goes unhandled.
   */
  async *ranges(key: string, size: number): AsyncGenerator<Buffer> {
    const starts: number[] = [];
    for (let start = 0; start < size; start += PART_BYTES) starts.push(start);
    const inFlight: Promise<Buffer>[] = [];
    let next = 0;
    const fetchNext = (): void => {
      const start = starts[next++] as number;
      const end = Math.min(size, start + PART_BYTES) - 1;
      const fetched = this.getRange(key, start, end, size);
      fetched.catch(() => undefined);
      inFlight.push(fetched);
    };
    while (next < starts.length && inFlight.length < PARTS_IN_FLIGHT) fetchNext();
    while (inFlight.length > 0) {
      const part = await (inFlight.shift() as Promise<Buffer>);
      if (next < starts.length) fetchNext();
      yield part;
    }
  }
}
