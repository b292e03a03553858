/**
 * A real S3 server for the object-storage e2e tests: a one-node Ceph cluster (memstore
 * OSD, radosgw on loopback) that scripts/s3-cluster.sh starts in a temp folder. One per
 * test file: started in beforeAll, every daemon stopped in afterAll, also when a test
 * failed or the start itself failed half-way.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { ROOT } from './stasis.js';

const run = promisify(execFile);
const SCRIPT = join(ROOT, 'scripts/s3-cluster.sh');
export const ACCESS_KEY = 'STASISTESTACCESSKEY1';
export const SECRET_KEY = 'stasis-test-secret-key-0123456789abcdef';

export interface S3Server {
  readonly endpoint: string;
  readonly client: S3Client;
  /** STASIS_S3_ENDPOINT and the AWS credentials a container needs to reach this server. */
  env(): Record<string, string>;
  createBucket(name: string): Promise<void>;
  /** Keys under `prefix`, sorted. */
  keys(bucket: string, prefix: string): Promise<string[]>;
  getText(bucket: string, key: string): Promise<string>;
  getBytes(bucket: string, key: string): Promise<Buffer>;
  put(bucket: string, key: string, body: Buffer | string): Promise<void>;
  deleteAll(bucket: string, prefix: string): Promise<void>;
  /** SIGSTOP the gateway: requests reach it and get no answer, until it is killed. */
  pauseGateway(): void;
  /** SIGKILL the gateway (mon and osd stay): the server dies in the middle of whatever it does. */
  killGateway(): Promise<void>;
  startGateway(): Promise<void>;
}

/** Registers beforeAll/afterAll for one cluster in this test file; use the result inside tests only. */
export function useS3(): S3Server {
  let dir = '';
  let endpoint = '';
  let client: S3Client | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stasis-ceph-'));
    endpoint = (await run(SCRIPT, ['start', dir, ACCESS_KEY, SECRET_KEY], { timeout: 60_000 })).stdout.trim();
    client = new S3Client({
      endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
  }, 90_000);
  afterAll(async () => {
    client?.destroy();
    if (dir === '') return;
    await run(SCRIPT, ['stop', dir], { timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
  const s3 = (): S3Client => {
    if (client === undefined) throw new Error('the S3 server is not started (useS3 in beforeAll)');
    return client;
  };
  const server: S3Server = {
    get endpoint() {
      return endpoint;
    },
    get client() {
      return s3();
    },
    env: () => ({ STASIS_S3_ENDPOINT: endpoint, AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY, AWS_REGION: 'us-east-1' }),
    async createBucket(name) {
      await s3().send(new CreateBucketCommand({ Bucket: name }));
    },
    async keys(bucket, prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).map((entry) => entry.Key ?? ''));
        token = page.NextContinuationToken;
      } while (token !== undefined);
      return keys.sort();
    },
    async getText(bucket, key) {
      return (await server.getBytes(bucket, key)).toString('utf8');
    },
    async getBytes(bucket, key) {
      const answer = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await (answer.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    },
    async put(bucket, key, body) {
      await s3().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async deleteAll(bucket, prefix) {
      const keys = await server.keys(bucket, prefix);
      if (keys.length > 0) await s3().send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    },
    pauseGateway() {
      process.kill(Number(readFileSync(join(dir, 'run/client.rgw.a.pid'), 'utf8').trim()), 'SIGSTOP');
    },
    async killGateway() {
      await run(SCRIPT, ['gateway-kill', dir], { timeout: 30_000 });
    },
    async startGateway() {
      await run(SCRIPT, ['gateway-start', dir], { timeout: 90_000 });
    },
  };
  return server;
}
