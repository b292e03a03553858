/**
 * The object store under a real OCI runtime: two runc containers, each with its own
 * network namespace (a pod's, reaching the Ceph RADOS Gateway this file starts through
 * the host end of a veth pair) and its own empty STASIS_DIR volume, migrate the counter
 * through STASIS_STORE alone. Never skipped: without runc, debootstrap or root it fails.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, test } from 'vitest';
import { counts, expectRun } from '../helpers/container.js';
import { capabilitiesFor } from '../helpers/oci.js';
import { PodNetwork } from '../helpers/podnet.js';
import { ROOTFS_ENV, RuncContainer, buildRootfs, missingRuncTools } from '../helpers/runc.js';
import { useS3 } from '../helpers/s3.js';

const BUCKET = 'stasis-e2e-runc';
const VOLUME = '/var/lib/stasis';
const s3 = useS3();
let rootfs = '';
const running: RuncContainer[] = [];
const networks: PodNetwork[] = [];
const volumes: string[] = [];

beforeAll(async () => {
  const missing = missingRuncTools();
  if (missing) throw new Error(missing);
  rootfs = buildRootfs();
  await s3.createBucket(BUCKET);
}, 60 * 60_000);

afterEach(async () => {
  for (const container of running.splice(0)) container.remove();
  for (const net of networks.splice(0)) await net.remove();
  for (const dir of volumes.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh pod: its own network namespace, an empty volume for STASIS_DIR, the manifests' capabilities. */
async function pod(prefix: string): Promise<{ container: RuncContainer; volume: string }> {
  const port = Number(new URL(s3.endpoint).port);
  const net = await PodNetwork.create(port);
  networks.push(net);
  const volume = mkdtempSync(join(tmpdir(), 'stasis-runc-store-'));
  volumes.push(volume);
  const container = new RuncContainer({
    rootfs,
    args: ['/usr/local/bin/stasis', '--', '/app/counter.sh'],
    env: {
      ...ROOTFS_ENV,
      ...s3.env(),
      STASIS_S3_ENDPOINT: `http://${net.hostAddress}:${port}`,
      STASIS_DIR: `${VOLUME}/checkpoints`,
      STASIS_STORE: `s3://${BUCKET}/${prefix}`,
    },
    capabilities: capabilitiesFor('minimal'),
    volumes: { [volume]: VOLUME },
    netns: net.path,
  });
  running.push(container);
  return { container, volume };
}

const ticks = (lines: readonly string[]): number[] => counts(lines, 'tick');

test('runc: a pod dumps to the store on runc kill USR2; a pod on an empty volume with another network restores from it and continues', async () => {
  const first = await pod('runc-migrate');
  await first.container.waitForStdout((lines) => ticks(lines).length >= 5, '5 ticks in pod 1');
  first.container.kill('USR2');
  const dumped = await first.container.finished();
  expect(dumped.code, dumped.raw).toBe(0);
  expect(dumped.events.find((event) => event.msg === 'checkpoint uploaded')?.compressed_bytes, dumped.raw).toBeGreaterThan(0);
  expect((await s3.keys(BUCKET, 'runc-migrate/')).some((key) => key.endsWith('/manifest.json'))).toBe(true);

  const second = await pod('runc-migrate');
  expect(readdirSync(second.volume)).toEqual([]);
  await second.container.waitForStdout((lines) => ticks(lines).length >= 3, 'ticks after the restore in pod 2');
  expect(second.container.event('checkpoint downloaded from the object store'), second.container.events().map((e) => e.msg).join(',')).toBeDefined();
  expect(second.container.event('restored')?.generation).toBe(1);
  expect(second.container.event('app started')).toBeUndefined();
  second.container.kill('TERM');
  const restored = await second.container.finished();
  expect(restored.code, restored.raw).toBe(143);
  expectRun((ticks(dumped.stdout).at(-1) ?? 0) + 1, ticks(restored.stdout));
});
