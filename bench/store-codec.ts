/**
 * node bench/store-codec.ts [MIB]   (default 64; root not needed)
 *
 * What stasis's object codec costs over a bare upload of the same file: one file of
 * MIB random bytes, uploaded to a Ceph RGW this script starts on loopback (and stops)
 * by the same Bucket (parts, parallelism), in alternation, 5 rounds:
 *   alone      a createReadStream as the body (what `npm run bench`'s "upload alone" does);
 *   codec none uploadFile with STASIS_COMPRESS=none (sha256 of the plain and the stored bytes);
 *   codec zstd uploadFile with zstd level 3 (the default);
 *   and codec none once more through stasis's own S3 client (timeouts, retries).
 * Prints the median of each, and zstd's and sha256's speed on this machine.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, zstdCompressSync } from 'node:zlib';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { uploadFile } from '../src/store/codec.ts';
import { makeClient } from '../src/store/client.ts';
import { Bucket } from '../src/store/objects.ts';
import { median, round, run } from './lib/proc.ts';
import { ROOT } from './lib/setup.ts';
import { ACCESS, benchClient, SECRET } from './store.ts';

const mib = Number(process.argv[2] ?? 64);
const work = mkdtempSync(join(tmpdir(), 'stasis-codec-'));
const script = join(ROOT, 'scripts/s3-cluster.sh');
const file = join(work, 'pages.img');
writeFileSync(file, randomBytes(mib << 20));

const timed = async (what: () => Promise<unknown>): Promise<number> => {
  const started = performance.now();
  await what();
  return performance.now() - started;
};

try {
  // RGW frees deleted data only in its later garbage collection: room for every upload, else a full OSD blocks them
  const memstore = String(Math.max(2 ** 31, 4 * 5 * mib * 2 ** 20 * 1.25));
  const env = { ...process.env, S3_CLUSTER_MEMSTORE_BYTES: memstore };
  const endpoint = (await run(script, ['start', join(work, 'ceph'), ACCESS, SECRET], { env, timeoutMs: 120_000 })).stdout.trim();
  const client = benchClient(endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'codec' }));
    const bucket = new Bucket(client, 'codec');
    // stasis's own client (timeouts, retries) for the codec runs
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1' });
    const stasisClient = makeClient({ endpoint, env: process.env });
    const stasisBucket = new Bucket(stasisClient, 'codec');
    const times = { alone: [] as number[], none: [] as number[], zstd: [] as number[], client: [] as number[] };
    for (let i = 0; i < 5; i++) {
      times.alone.push(await timed(() => bucket.upload(`alone-${i}`, createReadStream(file))));
      times.none.push(await timed(() => uploadFile(bucket, `none-${i}`, file, { compression: 'none', level: 3, key: null })));
      times.zstd.push(await timed(() => uploadFile(bucket, `zstd-${i}`, file, { compression: 'zstd', level: 3, key: null })));
      times.client.push(await timed(() => uploadFile(stasisBucket, `client-${i}`, file, { compression: 'none', level: 3, key: null })));
      await bucket.delete([`alone-${i}`, `none-${i}`, `zstd-${i}`, `client-${i}`]);
    }
    const bytes = readFileSync(file);
    const sha = await timed(async () => createHash('sha256').update(bytes).digest());
    const zstd = await timed(async () => zstdCompressSync(bytes, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }));
    const [alone, none, compressed] = [median(times.alone), median(times.none), median(times.zstd)];
    console.log(`${mib} MiB of random bytes, median of 5: alone ${round(alone, 0)} ms, codec none ${round(none, 0)} ms (${round(none / alone, 2)}x), codec zstd ${round(compressed, 0)} ms (${round(compressed / alone, 2)}x)`);
    console.log(`codec none with stasis's S3 client: ${round(median(times.client), 0)} ms`);
    console.log(`this machine: sha256 ${round(mib / (sha / 1000), 0)} MiB/s, zstd level 3 ${round(mib / (zstd / 1000), 0)} MiB/s (one thread)`);
    stasisClient.destroy();
  } finally {
    client.destroy();
  }
} finally {
  await run(script, ['stop', join(work, 'ceph')], { allowFail: true });
  rmSync(work, { recursive: true, force: true });
}
