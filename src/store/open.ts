import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import invariant from 'tiny-invariant';
import type { Config } from '../config.js';
import { fingerprint } from '../checkpoint/layout.js';
import { describeFsFailure, judge, listGenerations } from '../checkpoint/store.js';
import type { Logger } from '../log.js';
import { describeS3Error, endpointName, makeClient } from './client.js';
import { fetchNewest, StoreUnusable, type FetchResult } from './download.js';
import { expandLocation, formatLocation, type StoreLocation } from './location.js';
import { Bucket } from './objects.js';
import { keyCheckOf, newWriter, type StoreTarget } from './target.js';
import { publishGeneration, type Published } from './upload.js';

export type PublishOutcome = { readonly ok: true; readonly published: Published } | { readonly ok: false; readonly error: string };

/** What dumps and restores use of the object store (STASIS_STORE). */
export interface ObjectStore {
  readonly own: StoreTarget;
  readonly template: StoreTarget | null;
  /** Uploads a committed local generation; never throws. */
  publish(local: { readonly generation: number; readonly path: string }): Promise<PublishOutcome>;
  /** Before a restore: when `dir` holds no usable generation of this app, downloads the newest remote one. Never throws. */
  fetchForRestore(dir: string, argv: readonly string[]): Promise<void>;
}

/** AES-256 key from STASIS_ENCRYPTION_KEY_FILE: 32 raw bytes, or 64 hex digits or base64 of 32 bytes (a trailing newline is ignored). */
export function parseKey(content: Buffer): Buffer | undefined {
  if (content.length === 32) return content;
  const text = content.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const decoded = Buffer.from(text, 'base64');
  return /^[A-Za-z0-9+/]{43}=$/.test(text) && decoded.length === 32 ? decoded : undefined;
}

/** Builds the store from the config; throws with a clear message when the encryption key cannot be used. */
export async function openObjectStore(config: Config, log: Logger, env: Readonly<Record<string, string | undefined>> = process.env): Promise<ObjectStore> {
  const own = config.store;
  invariant(own !== null, 'openObjectStore needs STASIS_STORE');
  let key: Buffer | null = null;
  if (config.encryptionKeyFile !== null) {
    const content = await readFile(config.encryptionKeyFile).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`STASIS_ENCRYPTION_KEY_FILE ${config.encryptionKeyFile}: cannot read it (${error.code ?? error.message})`);
    });
    const parsed = parseKey(content);
    if (parsed === undefined) throw new Error(`STASIS_ENCRYPTION_KEY_FILE ${config.encryptionKeyFile} holds no AES-256 key: expected 32 bytes, 64 hex digits or base64 of 32 bytes`);
    key = parsed;
  }
  const client = makeClient({ endpoint: config.s3Endpoint, env });
  const endpoint = endpointName(config.s3Endpoint, env);
  const host = hostname();
  const coding = { compression: config.compress, level: config.compressLevel, key };
  const target = (location: StoreLocation, readOnly: boolean): StoreTarget => {
    const expanded = expandLocation(location, host);
    return { bucket: new Bucket(client, expanded.bucket), location: expanded, endpoint, writer: newWriter(), coding, keyCheck: keyCheckOf(key), readOnly };
  };
  const store = target(own, false);
  const template = config.storeTemplate === null ? null : target(config.storeTemplate, true);
  const describe = (t: StoreTarget, error: unknown): string => (error instanceof StoreUnusable ? error.message : describeS3Error(error, { bucket: t.location.bucket, endpoint: t.endpoint }));
  log.info({ store: formatLocation(store.location), template: template === null ? undefined : formatLocation(template.location), endpoint, compress: config.compress, encrypted: key !== null }, 'object store on');

  return {
    own: store,
    template,
    async publish(local) {
      try {
        const published = await publishGeneration(store, local, config.keep, log);
        log.info(
          {
            generation: local.generation,
            remote: published.id,
            store: formatLocation(store.location),
            objects: published.objects,
            bytes: published.bytes,
            compressed_bytes: published.storedBytes,
            upload_ms: published.uploadMs,
            duration_ms: published.uploadMs,
            pruned: published.pruned,
          },
          'checkpoint uploaded',
        );
        return { ok: true, published };
      } catch (error) {
        const message = describe(store, error);
        log.error({ generation: local.generation, store: formatLocation(store.location), error: message, err: (error as Error).message }, 'upload to the object store failed; the previous remote generation is intact');
        return { ok: false, error: `generation ${local.generation} is committed in STASIS_DIR but not in the object store: ${message}` };
      }
    },
    async fetchForRestore(dir, argv) {
      const expected = fingerprint(argv, config.appVersion);
      if (await hasUsableLocal(dir, expected)) {
        log.info({ dir }, 'STASIS_DIR holds a generation of this app: the object store is not consulted');
        return;
      }
      for (const source of template === null ? [store] : [store, template]) {
        const where = formatLocation(source.location);
        let result: FetchResult;
        try {
          log.info({ store: where, template: source.readOnly }, 'looking for a checkpoint in the object store');
          result = await fetchNewest(source, dir, expected, log);
        } catch (error) {
          // a full or read-only STASIS_DIR is the staging's fault, not the store's
          const staging = STAGING_ERRORS.has(String((error as NodeJS.ErrnoException).code)) ? await describeFsFailure(dir, error) : undefined;
          log.error({ store: where, error: staging ?? describe(source, error), err: (error as Error).message }, 'cannot restore from the object store; restoring from STASIS_DIR or starting fresh');
          return;
        }
        if (result.kind === 'fetched') return;
        log.info({ store: where, damaged: result.damaged }, 'no usable checkpoint of this app in the object store');
      }
    },
  };
}

/** Errors of writing the download into STASIS_DIR (no network error carries these codes). */
const STAGING_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO']);

async function hasUsableLocal(dir: string, expected: string): Promise<boolean> {
  for (const generation of await listGenerations(dir)) {
    if ((await judge(generation, expected)).kind === 'restorable') return true;
  }
  return false;
}
