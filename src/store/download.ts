import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beginIncoming, listGenerations, nextGenerationNumber, pointCurrentAt } from '../checkpoint/store.js';
import { generationName } from '../checkpoint/layout.js';
import type { Logger } from '../log.js';
import { DamagedObject, downloadFile } from './codec.js';
import { eachLimit } from './limit.js';
import { formatLocation, keyOf } from './location.js';
import { generationsIn, MANIFEST, parseManifest, type RemoteManifest } from './manifest.js';
import { quarantineRemote } from './quarantine.js';
import type { StoreTarget } from './target.js';

const FILES_IN_FLIGHT = 3;

/** Not the generation's fault (the store cannot be reached, a wrong key): nothing is quarantined, nothing more is tried. */
export class StoreUnusable extends Error {}

export interface Fetched {
  readonly id: string;
  readonly generation: number;
  readonly path: string;
  readonly bytes: number;
  readonly storedBytes: number;
  readonly downloadMs: number;
}

export type FetchResult = { readonly kind: 'fetched'; readonly fetched: Fetched } | { readonly kind: 'none'; readonly damaged: number };

/**
 * Downloads the newest committed generation of this app (fingerprint `expected`) from
 * `target` into `dir` as a local generation. A damaged one (unreadable manifest, a
 * missing object, a sha256 that differs) is moved to the remote quarantine (unless the
 * target is read-only) and the next older one is tried. Throws StoreUnusable, or the
 * S3 error, when the store itself fails.
 */
export async function fetchNewest(target: StoreTarget, dir: string, expected: string, log: Logger): Promise<FetchResult> {
  const { bucket, location } = target;
  const where = formatLocation(location);
  let damaged = 0;
  for (const candidate of generationsIn(await bucket.list(location.prefix)).filter((g) => g.committed)) {
    const started = performance.now();
    const fields = { store: where, remote: candidate.id };
    let manifest: RemoteManifest | string;
    try {
      manifest = parseManifest(await bucket.getBytes(keyOf(location, candidate.id, MANIFEST)).then(String), candidate.id);
    } catch (error) {
      if ((error as Error).name !== 'NoSuchKey') throw error;
      // pruned or quarantined by another writer since the listing
      continue;
    }
    if (typeof manifest !== 'string' && manifest.fingerprint !== expected) {
      log.warn(fields, 'remote checkpoint ignored: made for another command or app version');
      continue;
    }
    let reason: string;
    if (typeof manifest === 'string') {
      reason = manifest;
    } else {
      checkKey(target, manifest as RemoteManifest & { keyCheck?: unknown });
      const incoming = await beginIncoming(dir);
      log.info({ ...fields, objects: manifest.files.length, bytes: manifest.bytes, compressed_bytes: manifest.storedBytes }, 'download started');
      try {
        await downloadAll(target, candidate.id, manifest, incoming);
        const fetched = await install(dir, incoming, manifest.generation);
        const result = { id: candidate.id, generation: fetched.generation, path: fetched.path, bytes: manifest.bytes, storedBytes: manifest.storedBytes, downloadMs: Math.round(performance.now() - started) };
        log.info({ ...fields, generation: result.generation, bytes: result.bytes, compressed_bytes: result.storedBytes, download_ms: result.downloadMs, objects: manifest.files.length }, 'checkpoint downloaded from the object store');
        return { kind: 'fetched', fetched: result };
      } catch (error) {
        await rm(incoming, { recursive: true, force: true });
        if (!(error instanceof DamagedObject) && !isMissingObject(error)) throw error;
        reason = error instanceof DamagedObject ? error.message : `an object is missing or has another size: ${(error as Error).message}`;
      }
    }
    damaged++;
    if (target.readOnly) {
      log.error({ ...fields, reason }, 'remote checkpoint damaged; skipped (the template store is read-only)');
    } else {
      const quarantined = await quarantineRemote(target, candidate.id, reason).catch((error: unknown) => `not moved: ${(error as Error).message}`);
      log.error({ ...fields, reason, quarantined }, 'remote checkpoint damaged, quarantined; trying an older one');
    }
  }
  return { kind: 'none', damaged };
}

function checkKey(target: StoreTarget, manifest: RemoteManifest & { keyCheck?: unknown }): void {
  const where = `${formatLocation(target.location)} ${manifest.id}`;
  if (manifest.encryption === 'aes-256-gcm' && target.keyCheck === null) throw new StoreUnusable(`${where} is encrypted: set STASIS_ENCRYPTION_KEY_FILE to its key`);
  if (manifest.encryption === 'aes-256-gcm' && manifest.keyCheck !== target.keyCheck) throw new StoreUnusable(`${where} was encrypted with another key than STASIS_ENCRYPTION_KEY_FILE holds`);
}

function isMissingObject(error: unknown): boolean {
  const name = (error as Error).name;
  return name === 'NoSuchKey' || name === 'InvalidRange' || name === 'DamagedSize';
}

async function downloadAll(target: StoreTarget, id: string, manifest: RemoteManifest, incoming: string): Promise<void> {
  const coding = { compression: manifest.compression, level: 0, key: manifest.encryption === 'none' ? null : target.coding.key };
  const biggestFirst = [...manifest.files].sort((a, b) => b.storedSize - a.storedSize);
  await eachLimit(biggestFirst, FILES_IN_FLIGHT, async (file) => {
    const path = join(incoming, file.path);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await downloadFile(target.bucket, keyOf(target.location, id, file.object), file, path, { ...coding, compression: file.compression ?? coding.compression });
  });
}

/** Makes the downloaded folder a local generation, keeping its number unless that is used here (e.g. in quarantine). */
async function install(dir: string, incoming: string, remoteGeneration: number): Promise<{ generation: number; path: string }> {
  const taken = (await listGenerations(dir)).some((g) => g.generation >= remoteGeneration) || (await nextGenerationNumber(dir)) > remoteGeneration;
  const generation = taken ? await nextGenerationNumber(dir) : remoteGeneration;
  const path = join(dir, generationName(generation));
  await rename(incoming, path);
  await pointCurrentAt(dir, generationName(generation));
  return { generation, path };
}
