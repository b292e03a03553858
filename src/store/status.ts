import { hostname } from 'node:os';
import type { Config } from '../config.js';
import { describeS3Error, endpointName, makeClient } from './client.js';
import { expandLocation, formatLocation, keyOf, type StoreLocation } from './location.js';
import { CURRENT, generationsIn, QUARANTINE, REASON } from './manifest.js';
import { Bucket } from './objects.js';

export interface RemoteGenerationStatus {
  readonly id: string;
  readonly generation: number;
  /** false: no manifest yet - an upload running now, or one that failed */
  readonly committed: boolean;
  readonly objects: number;
  readonly storedBytes: number;
  readonly modified: string;
}

export interface RemoteStatus {
  readonly url: string;
  readonly endpoint: string;
  readonly template: boolean;
  readonly current: string | null;
  readonly generations: readonly RemoteGenerationStatus[];
  readonly quarantine: readonly { readonly id: string; readonly reason: string | null }[];
  /** the store could not be read: why */
  readonly error: string | null;
}

/** What STASIS_STORE (and STASIS_STORE_TEMPLATE) hold, for `stasis status`. Never throws. */
export async function collectRemoteStatus(config: Config, env: Readonly<Record<string, string | undefined>> = process.env): Promise<RemoteStatus[]> {
  const client = makeClient({ endpoint: config.s3Endpoint, env });
  const endpoint = endpointName(config.s3Endpoint, env);
  const locations = [config.store, config.storeTemplate].filter((location): location is StoreLocation => location !== null);
  try {
    return await Promise.all(locations.map((location, index) => readOne(new Bucket(client, location.bucket), expandLocation(location, hostname()), endpoint, index === 1)));
  } finally {
    client.destroy();
  }
}

async function readOne(bucket: Bucket, location: StoreLocation, endpoint: string, template: boolean): Promise<RemoteStatus> {
  const base = { url: formatLocation(location), endpoint, template };
  try {
    const listed = await bucket.list(location.prefix);
    const current = listed.some((entry) => entry.name === CURRENT) ? (await bucket.getBytes(keyOf(location, CURRENT))).toString('utf8').trim() : null;
    const quarantined = [...new Set(listed.filter((entry) => entry.name.startsWith(`${QUARANTINE}/`)).map((entry) => entry.name.split('/')[1] ?? ''))].filter((id) => id !== '');
    const quarantine = await Promise.all(
      quarantined.map(async (id) => ({
        id,
        reason: await bucket.getBytes(keyOf(location, QUARANTINE, id, REASON)).then(
          (bytes) => bytes.toString('utf8').trim(),
          () => null,
        ),
      })),
    );
    const generations = generationsIn(listed).map((g) => ({ id: g.id, generation: g.generation, committed: g.committed, objects: g.objects, storedBytes: g.storedBytes, modified: new Date(g.modified).toISOString() }));
    return { ...base, current, generations, quarantine, error: null };
  } catch (error) {
    return { ...base, current: null, generations: [], quarantine: [], error: describeS3Error(error, { bucket: location.bucket, endpoint }) };
  }
}
