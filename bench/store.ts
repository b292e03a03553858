/**
 * Part 5 (issue 13): checkpoints through object storage, against a one-node Ceph RADOS
 * Gateway on loopback that this part starts (scripts/s3-cluster.sh) and stops. For each
 * heap size (the incompressible heap app of part 2: the worst case for zstd):
 *   dump: SIGUSR2 to "checkpoint uploaded" (exit mode: criu, local commit, upload,
 *         manifest) against a local-only dump plus the upload alone of the same
 *         compressed bytes (same parts, same parallelism, no stasis);
 *   restore: container start, with an empty STASIS_DIR, to "restored" against the
 *         download alone of those objects plus a local restore (images not cached).
 */
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { constants, createZstdCompress } from 'node:zlib';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { compressionFor } from '../src/store/codec.ts';
import { eachLimit } from '../src/store/limit.ts';
import { Bucket } from '../src/store/objects.ts';
import { stasisEnv, ROOT, type Setup } from './lib/setup.ts';
import { Container, evict, filesIn, median, poll, round, run } from './lib/proc.ts';

export interface StoreOptions {
  readonly sizes: readonly { readonly mib: number; readonly reps: number }[];
  /** STASIS_COMPRESS of the stasis runs (the upload alone compresses the same way); default zstd */
  readonly compress?: 'zstd' | 'none';
}

interface StoreRun {
  readonly image_bytes: number;
  readonly stored_bytes: number;
  /** local only: signal handled to "dump committed" */
  readonly local_dump_ms: number;
  /** with STASIS_STORE: signal handled to "checkpoint uploaded" (the remote commit) */
  readonly store_dump_ms: number;
  readonly upload_ms: number;
  readonly upload_alone_ms: number;
  /** local only: container start to "restored" (images not cached) */
  readonly local_restore_ms: number;
  /** empty STASIS_DIR: container start to "restored" */
  readonly store_restore_ms: number;
  readonly download_ms: number;
  readonly download_alone_ms: number;
}

export interface StoreSizeResult extends StoreRun {
  readonly mib: number;
  readonly compress: 'zstd' | 'none';
  readonly reps: number;
  readonly compression_ratio: number;
  /** store dump / (local dump + upload alone); goal <= 1.3 */
  readonly dump_ratio: number;
  /** store start to restored / (download alone + local restore); goal <= 1.3 */
  readonly restore_ratio: number;
  readonly mb_per_s: { readonly upload: number; readonly download: number; readonly upload_alone: number; readonly download_alone: number };
}

export const ACCESS = 'STASISBENCHACCESSKEY';
export const SECRET = 'stasis-bench-secret-0123456789';

/** The bench's own S3 client for the local RGW: no checksum trailers (stasis's settings). */
export function benchClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
const BUCKET = 'stasis-bench';
const FILES_IN_FLIGHT = 3;

/** One dump (exit mode) and one restore in a new container; the log events that time them. */
async function dumpAndRestore(argv: readonly string[], firstEnv: NodeJS.ProcessEnv, secondEnv: NodeJS.ProcessEnv, committed: string) {
  const first = new Container(argv, firstEnv);
  try {
    await first.waitForStdout('ready', 300_000);
    await first.signal('SIGUSR2');
    const { event: done } = await first.waitForEvent(committed, 600_000);
    const received = first.events().find((e) => e.msg === 'signal handled by stasis');
    if (received === undefined) throw new Error(`no "signal handled by stasis" line: ${first.tail()}`);
    const code = await first.done;
    // in exit mode with a store, "dump committed" comes after "checkpoint uploaded"
    const dumped = first.events().find((e) => e.msg === 'dump committed');
    if (dumped === undefined) throw new Error(`no "dump committed" line: ${first.tail()}`);
    if (code !== 0) throw new Error(`stasis exited ${code} after the dump: ${first.tail()}`);
    await evict(filesIn(String(dumped.path)));
    const second = new Container(argv, secondEnv);
    try {
      const { atMs } = await second.waitForEvent('restored', 600_000);
      const downloaded = second.events().find((e) => e.msg === 'checkpoint downloaded from the object store');
      await second.signal('SIGTERM');
      await poll('stasis to exit after SIGTERM', () => (second.child.exitCode === null ? undefined : true), 20_000);
      return { dumpMs: Number(done.time) - Number(received.time), done, dumped, downloaded, restoreMs: round(atMs) };
    } finally {
      await second.kill();
    }
  } finally {
    await first.kill();
  }
}

/** Compresses each file like stasis (zstd level 3 where it shrinks, none with --compress none), then times uploading and downloading those objects alone. */
async function transferAlone(bucket: Bucket, generation: string, workDir: string, prefix: string, compress: 'zstd' | 'none'): Promise<{ upload: number; download: number }> {
  const packed = join(workDir, 'packed');
  mkdirSync(packed, { recursive: true });
  const names = readdirSync(generation).filter((name) => statSync(join(generation, name)).isFile());
  for (const name of names) {
    // the same bytes as stasis stores: zstd only where its samples shrink
    const path = join(generation, name);
    const stages = (await compressionFor(path, statSync(path).size, { compression: compress, level: 3 })) === 'zstd' ? [createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: 3 } })] : [];
    await pipeline([createReadStream(join(generation, name)), ...stages, createWriteStream(join(packed, name))]);
  }
  const bySize = names.map((name) => ({ name, size: statSync(join(packed, name)).size })).sort((a, b) => b.size - a.size);
  const up = performance.now();
  await eachLimit(bySize, FILES_IN_FLIGHT, (file) => bucket.upload(`${prefix}/${file.name}`, createReadStream(join(packed, file.name))));
  const upload = performance.now() - up;
  rmSync(packed, { recursive: true, force: true });
  mkdirSync(packed);
  const down = performance.now();
  await eachLimit(bySize, FILES_IN_FLIGHT, (file) => pipeline(Readable.from(bucket.ranges(`${prefix}/${file.name}`, file.size)), createWriteStream(join(packed, file.name))));
  const download = performance.now() - down;
  rmSync(packed, { recursive: true, force: true });
  return { upload: round(upload), download: round(download) };
}

async function oneRun(setup: Setup, mib: number, workDir: string, bucket: Bucket, s3Env: NodeJS.ProcessEnv, rep: number, compress: 'zstd' | 'none'): Promise<StoreRun> {
  const argv = [setup.stasis.path, '--', setup.apps.heap, String(mib)];
  const localDir = join(workDir, `local-${mib}`);
  const storeDir = join(workDir, `store-${mib}`);
  const emptyDir = join(workDir, `empty-${mib}`);
  const prefix = `size-${mib}/run-${rep}`;
  try {
    const local = await dumpAndRestore(argv, stasisEnv(setup, localDir), stasisEnv(setup, localDir), 'dump committed');
    const store = { ...s3Env, STASIS_STORE: `s3://${BUCKET}/${prefix}/stasis`, STASIS_COMPRESS: compress };
    const remote = await dumpAndRestore(argv, { ...stasisEnv(setup, storeDir), ...store }, { ...stasisEnv(setup, emptyDir), ...store }, 'checkpoint uploaded');
    const alone = await transferAlone(bucket, String(remote.dumped.path), workDir, `${prefix}/alone`, compress);
    return {
      image_bytes: Number(remote.done.bytes),
      stored_bytes: Number(remote.done.compressed_bytes),
      local_dump_ms: local.dumpMs,
      store_dump_ms: remote.dumpMs,
      upload_ms: Number(remote.done.upload_ms),
      upload_alone_ms: alone.upload,
      local_restore_ms: local.restoreMs,
      store_restore_ms: remote.restoreMs,
      download_ms: Number(remote.downloaded?.download_ms),
      download_alone_ms: alone.download,
    };
  } finally {
    for (const dir of [localDir, storeDir, emptyDir]) rmSync(dir, { recursive: true, force: true });
    // memstore keeps objects in RAM: each run's objects go
    const keys = (await bucket.list(`size-${mib}`)).map((entry) => `size-${mib}/${entry.name}`);
    await bucket.delete(keys);
  }
}

const mbPerS = (bytes: number, ms: number): number => round(bytes / 1e6 / (ms / 1000), 0);

export async function benchStore(setup: Setup, options: StoreOptions, workDir: string): Promise<StoreSizeResult[]> {
  const cluster = join(workDir, 'ceph');
  const script = join(ROOT, 'scripts/s3-cluster.sh');
  // every run's generation and its copy for the upload alone stay in the OSD's RAM: RGW
  // frees deleted multipart data only in its garbage collection, hours later, and a full
  // OSD blocks writes instead of failing them
  const total = options.sizes.reduce((sum, size) => sum + size.mib * size.reps * 2, 0);
  const memstore = String(Math.max(2 ** 31, Math.ceil(total * 1.25) * 2 ** 20));
  const started = await run(script, ['start', cluster, ACCESS, SECRET], { env: { ...process.env, S3_CLUSTER_MEMSTORE_BYTES: memstore }, timeoutMs: 120_000 });
  const endpoint = started.stdout.trim();
  const s3Env = { STASIS_S3_ENDPOINT: endpoint, AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1' };
  const client = benchClient(endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const bucket = new Bucket(client, BUCKET);
    const results: StoreSizeResult[] = [];
    for (const { mib, reps } of options.sizes) {
      const runs: StoreRun[] = [];
      for (let rep = 0; rep < reps; rep++) {
        console.error(`bench: part 5 (store) - ${mib} MiB, run ${rep + 1} of ${reps}`);
        runs.push(await oneRun(setup, mib, workDir, bucket, s3Env, rep, options.compress ?? 'zstd'));
      }
      const pick = (key: keyof StoreRun): number => median(runs.map((r) => r[key]));
      const m = Object.fromEntries((Object.keys(runs[0] as StoreRun) as (keyof StoreRun)[]).map((key) => [key, pick(key)])) as unknown as StoreRun;
      results.push({
        mib,
        reps,
        compress: options.compress ?? 'zstd',
        ...m,
        compression_ratio: round(m.image_bytes / m.stored_bytes, 3),
        dump_ratio: round(median(runs.map((r) => r.store_dump_ms / (r.local_dump_ms + r.upload_alone_ms))), 3),
        restore_ratio: round(median(runs.map((r) => r.store_restore_ms / (r.download_alone_ms + r.local_restore_ms))), 3),
        mb_per_s: {
          upload: mbPerS(m.stored_bytes, m.upload_ms),
          download: mbPerS(m.stored_bytes, m.download_ms),
          upload_alone: mbPerS(m.stored_bytes, m.upload_alone_ms),
          download_alone: mbPerS(m.stored_bytes, m.download_alone_ms),
        },
      });
    }
    return results;
  } finally {
    client.destroy();
    await run(script, ['stop', cluster], { allowFail: true });
    rmSync(cluster, { recursive: true, force: true });
  }
}
