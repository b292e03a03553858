import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { METADATA_FILE } from '../checkpoint/layout.js';
import { compressionFor, uploadFile } from './codec.js';
import { generationFiles } from './files.js';
import { eachLimit } from './limit.js';
import { keyOf } from './location.js';
import { CURRENT, generationId, generationsIn, MANIFEST, MANIFEST_FORMAT, objectName, remoteToPrune, type RemoteFile, type RemoteManifest } from './manifest.js';
import type { StoreTarget } from './target.js';
import type { Logger } from '../log.js';

/** Objects uploaded at a time (each with its own parts in flight). */
const FILES_IN_FLIGHT = 3;

export interface Published {
  readonly id: string;
  readonly key: string;
  readonly generation: number;
  readonly objects: number;
  readonly bytes: number;
  readonly storedBytes: number;
  readonly uploadMs: number;
  readonly pruned: readonly string[];
}

/**
 * Copies a committed local generation to the store: every file compressed (and
 * encrypted) under a writer-unique generation folder, then manifest.json (the commit),
 * then `current`, then the prune to `keep`. Until the manifest is written nothing of it
 * is ever restored; a failure removes what was uploaded (best effort) and throws.
 */
export async function publishGeneration(
  target: StoreTarget,
  local: { readonly generation: number; readonly path: string },
  keep: number,
  log: Logger,
): Promise<Published> {
  const started = performance.now();
  const { bucket, location } = target;
  const metadata = JSON.parse(await readFile(join(local.path, METADATA_FILE), 'utf8')) as { fingerprint: string };
  const before = generationsIn(await bucket.list(location.prefix));
  // numbers only grow in a prefix, also when this node's STASIS_DIR is behind the store
  const generation = Math.max(local.generation, (before[0]?.generation ?? 0) + 1);
  const id = generationId(generation, target.writer);
  const key = (...parts: string[]): string => keyOf(location, id, ...parts);
  const coding = target.coding;
  const localFiles = await generationFiles(local.path);
  log.info({ generation: local.generation, remote: id, objects: localFiles.length, bytes: localFiles.reduce((sum, file) => sum + file.size, 0) }, 'upload started');
  let files: RemoteFile[];
  try {
    files = await eachLimit(localFiles, FILES_IN_FLIGHT, async (file) => {
      const path = join(local.path, file.path);
      const compression = await compressionFor(path, file.size, coding);
      const object = objectName(file.path, compression, coding.key === null ? 'none' : 'aes-256-gcm');
      const measured = await uploadFile(bucket, key(object), path, { ...coding, compression });
      return { path: file.path, object, ...measured, ...(compression === coding.compression ? {} : { compression }) };
    });
    const manifest: RemoteManifest & { readonly keyCheck: string | null } = {
      format: MANIFEST_FORMAT,
      id,
      generation,
      writer: target.writer,
      created: new Date().toISOString(),
      fingerprint: metadata.fingerprint,
      compression: coding.compression,
      encryption: coding.key === null ? 'none' : 'aes-256-gcm',
      keyCheck: target.keyCheck,
      bytes: files.reduce((sum, file) => sum + file.size, 0),
      storedBytes: files.reduce((sum, file) => sum + file.storedSize, 0),
      files,
    };
    await bucket.put(key(MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  } catch (error) {
    await bucket.list(keyOf(location, id)).then(
      (left) => bucket.delete(left.map((entry) => key(entry.name))),
      () => undefined,
    ).catch(() => undefined);
    throw error;
  }
  await bucket.put(keyOf(location, CURRENT), `${id}\n`);
  const doomed = remoteToPrune(generationsIn(await bucket.list(location.prefix)), keep, Date.now());
  for (const old of doomed) {
    const left = await bucket.list(keyOf(location, old));
    // the manifest first: a half-deleted generation is never taken for a whole one
    const names = left.map((entry) => entry.name).sort((a, b) => Number(b === MANIFEST) - Number(a === MANIFEST));
    for (const name of names.slice(0, 1)) await bucket.delete([keyOf(location, old, name)]);
    await bucket.delete(names.slice(1).map((name) => keyOf(location, old, name)));
  }
  return {
    id,
    key: key(),
    generation,
    objects: files.length,
    bytes: files.reduce((sum, file) => sum + file.size, 0),
    storedBytes: files.reduce((sum, file) => sum + file.storedSize, 0),
    uploadMs: Math.round(performance.now() - started),
    pruned: doomed,
  };
}
